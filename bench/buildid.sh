#!/usr/bin/env bash
# FindAndHash throughput: sgcache vs the Go toolchain, on one core, same ~100 MB file.
#
#   bench/buildid.sh [SIZE_MB] [RUNS]     (defaults: 100 MB, 5 runs)
#
# The file: a real hello-world ELF binary (so both tools read its build ID from the ELF
# note), followed by copies of the go command binary and of itself until it reaches
# SIZE_MB, so the build ID occurs several times and the scan crosses many buffer
# boundaries. Both tools are pinned to CPU 0 with taskset; the file is in the page cache
# (one warm-up run each). Reported:
#   - sgcache find_and_hash alone (in-process, best of RUNS);
#   - whole-process `-w` (read ID + FindAndHash + rewrite), best of RUNS, for
#     the `go tool buildid` binary (`go tool -n buildid`) with -w and the equivalent sgcache-buildid call.
set -euo pipefail
size_mb=${1:-100}
runs=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p sgcache-buildid --example buildid_bench
ours="$CARGO_TARGET_DIR/release/examples/buildid_bench"
# Go 1.26 builds `go tool buildid` on demand; -n prints the cached binary.
gobuildid=$(go tool -n buildid)

mkdir "$work/hello"
printf 'module example.com/hello\n\ngo 1.21\n' >"$work/hello/go.mod"
printf 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello, world") }\n' >"$work/hello/main.go"
(cd "$work/hello" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -o "$work/hello.bin" .)
f="$work/big.bin"
cp "$work/hello.bin" "$f"
while [ "$(stat -c %s "$f")" -lt $((size_mb * 1000 * 1000)) ]; do
  cat "$(command -v go)" "$work/hello.bin" >>"$f"
done
bytes=$(stat -c %s "$f")
pin="taskset -c 0"
command -v taskset >/dev/null || pin=""

# Warm up the page cache and bring the content ID up to date, so every timed -w run does
# the same work (find, hash, write the same ID back).
$gobuildid -w "$f"
"$ours" -w "$f"

# Best of $runs runs of "$@": CPU seconds (user+sys, all threads) and wall seconds.
best() {
  local cpu=999999 wall=999999 r
  for _ in $(seq "$runs"); do
    r=$( { TIMEFORMAT='%3R %3U %3S'; time "$@" >/dev/null 2>&1; } 2>&1 )
    read -r w u s <<<"$r"
    cpu=$(awk -v a="$cpu" -v b="$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')" 'BEGIN{print (b<a)?b:a}')
    wall=$(awk -v a="$wall" -v b="$w" 'BEGIN{print (b<a)?b:a}')
  done
  echo "$cpu $wall"
}

echo "file: $bytes bytes, build ID $($gobuildid "$f" | cut -c1-24)..., CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load: $(cut -d' ' -f1-3 /proc/loadavg)"
$pin "$ours" "$f" "$runs"
read -r go_cpu go_wall <<<"$(best $pin "$gobuildid" -w "$f")"
read -r our_cpu our_wall <<<"$(best $pin "$ours" -w "$f")"
awk -v b="$bytes" -v gc="$go_cpu" -v gw="$go_wall" -v oc="$our_cpu" -v ow="$our_wall" 'BEGIN {
  printf "whole process, -w (read ID + FindAndHash + rewrite), best of runs:\n";
  printf "  go tool buildid -w : CPU %6.3f s = %5.0f MB/s; wall %6.3f s = %5.0f MB/s\n", gc, b/gc/1e6, gw, b/gw/1e6;
  printf "  sgcache equivalent : CPU %6.3f s = %5.0f MB/s; wall %6.3f s = %5.0f MB/s\n", oc, b/oc/1e6, ow, b/ow/1e6;
  printf "  ratio (go/sgcache CPU time): %.2fx\n", gc/oc }'
