# Shared set-up of the bench scripts (source it right after `set -euo pipefail`): builds the
# release binary and sets `root`, `sg`, `work` (a new directory; the caller removes it) and a
# hermetic go environment; defines `now` (ns), `ms_since T0` and `median` (of stdin lines).
#
# SGCACHE_BENCH_TMP=DIR puts `work` under DIR. On a machine whose root file system is ext4
# without a journal (the development machine), every file creation scans past inodes freed in
# the last few minutes, so a machine busy deleting test directories bills its fresh builds for
# it; a scratch ext4 with a journal (as on CI runners) does not:
#   truncate -s 8G /work/benchfs.img && mkfs.ext4 -q -F /work/benchfs.img &&
#   mkdir -p /mnt/benchfs && mount -o loop /work/benchfs.img /mnt/benchfs
# For the same reason no bench deletes a directory before its end.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
cargo build --quiet --release --locked --manifest-path "$root/Cargo.toml" -p sgcache
sg="$CARGO_TARGET_DIR/release/sgcache"
work=$(mktemp -d -p "${SGCACHE_BENCH_TMP:-${TMPDIR:-/tmp}}")
export GOTOOLCHAIN=local GOENV=off GOTELEMETRY=off GOFLAGS=

now() { date +%s%N; }
ms_since() { echo $((($(now) - $1) / 1000000)); }
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }

# latency_proxy URL MS: starts bench/latency_proxy.rs in front of URL's loopback port, adding
# MS to every request; sets `proxy_pid` (the caller kills it) and `slow_url` (URL through it).
latency_proxy() {
  local port target
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  target=$(python3 -c 'import re,sys; m=re.search(r"127\.0\.0\.1:(\d+)", sys.argv[1]); print(m.group(1))' "$1")
  rustc -O --edition 2021 -o "$work/latency_proxy" "$root/bench/latency_proxy.rs"
  "$work/latency_proxy" "$port" "$target" "$2" &
  proxy_pid=$!
  sleep 0.5
  slow_url=${1/127.0.0.1:$target/127.0.0.1:$port}
}
