#!/usr/bin/env bash
# The floor of the warm-build figure on this machine: a GOCACHEPROG helper that answers every
# get from an index preloaded in memory with no file system call per request
# (bench/roundtrip/floor.rs with an index), against sgcache, both against the plain go command, paired
# runs in alternating order in one session:
#
#   bench/floor.sh [PAIRS]      (default 15)
#
# What is left of the ratio at the floor is the go command's own GOCACHEPROG client (JSON,
# goroutine hand-offs, one pipe round trip per request), which no helper can remove.
set -euo pipefail
pairs=${1:-15}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
trap 'rm -rf "$work"' EXIT
unset SGCACHE_DIR SGCACHE_REMOTE SGCACHE_MAX_SIZE SGCACHE_VERBOSE
rustc -O --edition 2021 -o "$work/preloaded" "$root/bench/roundtrip/floor.rs"
warm=$work/warm
GOCACHE=$warm GOCACHEPROG=$sg go build std
# The index, as the preloaded helper reads it.
cat "$warm"/??/*-a | awk '{print $2, $3, $4, $5}' >"$work/index"
export PRELOADED_INDEX=$work/index

timed() { # prog -> ms of a warm `go build std`
  local t0
  t0=$(now)
  GOCACHE=$warm GOCACHEPROG=$1 go build std >/dev/null
  ms_since "$t0"
}
echo "sgcache bench/floor.sh  $(go version)  $(nproc) cores  $(date -u +%FT%TZ)  $(wc -l <"$work/index") entries"
for prog in "$work/preloaded" "$sg"; do timed "$prog" >/dev/null; timed "" >/dev/null; done
: >"$work/rp"; : >"$work/rs"
for i in $(seq "$pairs"); do
  if ((i % 2)); then p=$(timed ""); a=$(timed "$work/preloaded"); b=$(timed "$sg")
  else b=$(timed "$sg"); a=$(timed "$work/preloaded"); p=$(timed ""); fi
  awk -v a="$a" -v p="$p" 'BEGIN {printf "%.4f\n", a/p}' >>"$work/rp"
  awk -v b="$b" -v p="$p" 'BEGIN {printf "%.4f\n", b/p}' >>"$work/rs"
done
printf 'warm go build std / plain go (median of %s pairs): preloaded floor %s, sgcache %s\n' \
  "$pairs" "$(median <"$work/rp")" "$(median <"$work/rs")"
