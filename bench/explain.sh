#!/usr/bin/env bash
# The overhead of `sgcache explain record` against the plain go command, warm, in pairs.
#
#   bench/explain.sh [PAIRS] [DIR] [GO ARGS...]     (defaults: 9, $(go env GOROOT)/src, build std)
#   bench/explain.sh 9 /path/to/golang.org/x/tools vet ./...
#
# Both commands run in DIR with one GOCACHE of their own (warmed first by one plain run and
# one recorded run, so every action hits in both), alternately, plain first; each pair's
# ratio is recorded run / plain run, and the medians are printed. The recorded run pays for
# the go command printing its hashing transcript and writing its action graph, and for
# sgcache parsing both and writing the baseline (printed: its size).
set -euo pipefail
pairs=${1:-9}
dir=${2:-$(go env GOROOT)/src}
shift 2 2>/dev/null || shift $#
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(build std)
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
cargo build --quiet --release --workspace --manifest-path "$root/Cargo.toml"
sg="$CARGO_TARGET_DIR/release/sgcache"
work=$(mktemp -d -p "${SGCACHE_BENCH_TMP:-${TMPDIR:-/tmp}}")
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOENV=off GOTELEMETRY=off GOFLAGS=-modcacherw GOCACHE="$work/gocache" GOCACHEPROG=
unset GODEBUG SGCACHE_DIR SGCACHE_REMOTE
now() { date +%s%N; }
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }

cd "$dir"
echo "warming $GOCACHE: go ${args[*]} in $dir" >&2
go "${args[@]}" >/dev/null
"$sg" explain record --out "$work/b.sgxb" -- go "${args[@]}" >/dev/null 2>"$work/record.txt"
tail -1 "$work/record.txt" >&2
: >"$work/plain"; : >"$work/rec"; : >"$work/ratio"
for i in $(seq "$pairs"); do
  t0=$(now); go "${args[@]}" >/dev/null 2>&1; t1=$(now)
  "$sg" explain record --out "$work/b.sgxb" -- go "${args[@]}" >/dev/null 2>&1; t2=$(now)
  p=$(( (t1 - t0) / 1000000 )); r=$(( (t2 - t1) / 1000000 ))
  echo "$p" >>"$work/plain"; echo "$r" >>"$work/rec"
  awk -v a="$r" -v b="$p" 'BEGIN{printf "%.3f\n", a/b}' >>"$work/ratio"
  echo "pair $i: plain $p ms, recorded $r ms" >&2
done
echo "go ${args[*]} (warm, $pairs pairs): plain $(median <"$work/plain") ms, recorded $(median <"$work/rec") ms, recorded/plain median $(median <"$work/ratio"); baseline $(stat -c %s "$work/b.sgxb") bytes"
