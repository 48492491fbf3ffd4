#!/usr/bin/env bash
# The project's test command (README "Test"): installs what the tests need, starts the
# servers the remote tier is tested against on loopback, runs every test, stops them.
#
#   bash scripts/test.sh            # everything
#   SGCACHE_TEST_QUICK=1 bash ...   # skip servers and fuzzing (unit + go end-to-end only)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

need() { command -v "$1" >/dev/null 2>&1; }
need cargo || { echo "scripts/test.sh: cargo is required (https://rustup.rs)" >&2; exit 2; }
need go || { echo "scripts/test.sh: the go command is required: the tests run the real go" >&2; exit 2; }

# cgo and `script` (pty test) come from Debian packages; install only when missing.
missing=()
need gcc || missing+=(gcc)
need script || missing+=(util-linux)
if ((${#missing[@]})) && [ "$(id -u)" = 0 ] && need apt-get; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -z "${SGCACHE_TEST_QUICK:-}" ] && [ -f .ci/servers.sh ]; then
  bash .ci/servers.sh install
  bash .ci/servers.sh start
  trap 'bash .ci/servers.sh stop' EXIT
  # shellcheck disable=SC1090
  . <(bash .ci/servers.sh env)
fi

# Go 1.23 built with GOEXPERIMENT=cacheprog, for the version-compatibility test (built once,
# kept in ~/.cache/sgcache-ci). Without it that test prints why it skips.
if [ -z "${SGCACHE_TEST_QUICK:-}" ] && [ -z "${SGCACHE_GO123:-}" ]; then
  if go123=$(bash scripts/go123.sh); then
    export SGCACHE_GO123=$go123
  else
    echo "scripts/test.sh: could not build Go 1.23 (cacheprog); reliability_compat will skip" >&2
  fi
fi

# The other Go release lines (newest patch each), downloaded once by the go command into its
# module cache. Without them the toolchains test prints why it skips.
if [ -z "${SGCACHE_TEST_QUICK:-}" ] && [ -z "${SGCACHE_GO_TOOLCHAINS:-}" ]; then
  SGCACHE_GO_TOOLCHAINS=$(bash scripts/go-toolchains.sh)
  export SGCACHE_GO_TOOLCHAINS
fi

cargo test --workspace --locked --no-fail-fast

# The GitHub Action (node's test runner against a fake runner, plus one whole job with the
# binary just built) and the workflow files (actionlint); installs what it needs.
bash scripts/action-test.sh

if [ -z "${SGCACHE_TEST_QUICK:-}" ] && [ -f fuzz/run.sh ]; then
  bash fuzz/run.sh
fi
