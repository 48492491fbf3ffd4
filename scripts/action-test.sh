#!/usr/bin/env bash
# Tests of the GitHub Action and the workflow files (run by scripts/test.sh):
#  - action/test/*.test.js with node's built-in test runner against a fake runner environment;
#    with SGCACHE_BIN (the binary `cargo test` built) the last test runs a whole job for real;
#  - actionlint on .github/workflows/ (installed with `go install` into ~/.cache/sgcache-ci/bin
#    when missing), which also checks the workflows' use of the action against action.yml.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need node && [ "$(id -u)" = 0 ] && need apt-get; then
  apt-get update -qq && apt-get install -y -qq nodejs >/dev/null
fi
need node || { echo "scripts/action-test.sh: node (>= 20) is required for the action's tests" >&2; exit 2; }
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "scripts/action-test.sh: node $(node --version) is too old; the action's tests need node >= 20" >&2
  exit 2
fi

bin=${SGCACHE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/sgcache}
if [ -x "$bin" ]; then
  export SGCACHE_BIN=$bin
else
  echo "scripts/action-test.sh: no built sgcache at $bin; the real-job test will skip" >&2
fi
node --test action/test/*.test.js

# actionlint runs shellcheck on `run:` scripts when it is installed.
if ! need shellcheck && [ "$(id -u)" = 0 ] && need apt-get; then
  apt-get install -y -qq shellcheck >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; } ||
    echo "scripts/action-test.sh: shellcheck not installed; actionlint checks run: scripts without it" >&2
fi
tools=${SGCACHE_CI_BIN:-$HOME/.cache/sgcache-ci/bin}
actionlint=$tools/actionlint
want=1.7.12
if ! [ -x "$actionlint" ] || ! "$actionlint" -version 2>/dev/null | grep -qx "v$want"; then
  mkdir -p "$tools"
  GOBIN=$tools GOFLAGS= GOTOOLCHAIN=local go install "github.com/rhysd/actionlint/cmd/actionlint@v$want"
fi
"$actionlint" -no-color .github/workflows/*.yml
echo "actionlint: $(ls .github/workflows/*.yml | wc -l) workflow files clean"
