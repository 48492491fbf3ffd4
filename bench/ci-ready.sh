#!/usr/bin/env bash
# Time from "the action's setup step starts" to "sgcache ready" on the release-binary path:
# the action (node action/main.js, as the runner runs it) against a fake runner whose release
# host is a local HTTP server serving the stripped binary as a release asset with SHA256SUMS,
# with a file:// remote (so the daemon starts and answers). Each run starts from an empty tool
# cache (a fresh hosted runner: download, verify, unpack, restore-mtimes, start the daemon).
#
#   bash bench/ci-ready.sh [RUNS] [BINARY]
#
# BINARY defaults to $CARGO_TARGET_DIR/dist/sgcache (`cargo build --workspace --profile dist`).
# Prints each run and the median. docs/ci.md has the figures.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
bin=${2:-${CARGO_TARGET_DIR:-$root/target}/dist/sgcache}
[ -x "$bin" ] || { echo "bench/ci-ready.sh: no binary at $bin; build it with cargo build --workspace --profile dist" >&2; exit 2; }

work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

target=x86_64-unknown-linux-musl
mkdir -p "$work/rel/v0.0.0" "$work/stage/sgcache-$target"
cp "$bin" "$work/stage/sgcache-$target/sgcache"
tar -czf "$work/rel/v0.0.0/sgcache-$target.tar.gz" -C "$work/stage" "sgcache-$target"
(cd "$work/rel/v0.0.0" && sha256sum "sgcache-$target.tar.gz" > SHA256SUMS)
echo "binary $(stat -c %s "$bin") bytes; asset $(stat -c %s "$work/rel/v0.0.0/sgcache-$target.tar.gz") bytes (tar.gz)"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/rel" >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/v0.0.0/SHA256SUMS" >/dev/null 2>&1 && break; sleep 0.1; done

# A checkout for restore-mtimes to work on: this repository's tracked files.
git clone -q --no-local "$root" "$work/ws"

times=()
for i in $(seq "$runs"); do
  r=$work/run$i
  mkdir -p "$r/temp" "$r/xdg" "$r/gocache"
  : > "$r/env"; : > "$r/out"; : > "$r/state"; : > "$r/path"; : > "$r/summary"
  echo '{"repository":{"default_branch":"main","full_name":"acme/app","id":1}}' > "$r/event.json"
  runner_env=(
    "PATH=$PATH" "HOME=$r" "RUNNER_OS=Linux" "RUNNER_ARCH=X64" "RUNNER_TEMP=$r/temp"
    "RUNNER_TOOL_CACHE=$r/toolcache" "GITHUB_ENV=$r/env" "GITHUB_OUTPUT=$r/out"
    "GITHUB_STATE=$r/state" "GITHUB_PATH=$r/path" "GITHUB_STEP_SUMMARY=$r/summary"
    "GITHUB_EVENT_PATH=$r/event.json" "GITHUB_WORKSPACE=$work/ws" "GITHUB_REF_NAME=main"
    "GITHUB_REPOSITORY=acme/app" "GITHUB_ACTION_REPOSITORY=acme/sgcache" "GITHUB_ACTION_REF=v0.0.0"
    "INPUT_REMOTE=file://$work/remote" "INPUT_RELEASE-URL=http://127.0.0.1:$port"
    "XDG_RUNTIME_DIR=$r/xdg" "GOCACHE=$r/gocache"
  )
  t0=$(date +%s%N)
  env -i "${runner_env[@]}" node "$root/action/main.js" > "$r/log"
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
  times+=("$ms")
  echo "run $i: ${ms} ms to ready ($(grep -o 'sgcache ready in [0-9.]* s' "$r/log"); $(grep -o 'restore-mtimes: set [0-9]* files' "$r/log" || true))"
  # End of the job: the post step stops the daemon and writes the summary.
  state=$(node -e 'const l = require(process.argv[1]); const fs = require("fs");
    process.stdout.write(l.parseKeyValueFile(fs.readFileSync(process.argv[2], "utf8")).sgcache)' \
    "$root/action/lib.js" "$r/state")
  env -i "${runner_env[@]}" "STATE_sgcache=$state" node "$root/action/post.js" > "$r/post.log"
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "--- the last run's job summary (no go command ran):"
cat "$r/summary"
echo "median of $runs: ${median} ms from the setup step's start to sgcache ready (release binary)"
