#!/usr/bin/env bash
# Peak RSS of sgcache (in-process, no daemon) serving builds of different sizes, with and
# without a remote, to show memory does not grow with the size of the build:
#
#   bench/memory.sh [MODULE_DIR]    (default: golang.org/x/tools v0.52.0 from the module proxy)
#
#   cold `go build std`, local only                                   (reference)
#   cold `go build std`, empty file:// remote (every output uploaded)
#   cold `go build ./...` of MODULE_DIR, local only
#   cold `go build ./...` of MODULE_DIR, empty file:// remote          (target <= 64 MB)
#   fresh directory + warm file:// remote, `go build ./...` of MODULE_DIR (prefetch, packs)
#
# Each line gives peak RSS (KiB, from /usr/bin/time %M), the build's wall time, the number of
# outputs and their bytes (the local directory's output files after the build). Uploads,
# packs and prefetch go through bounded buffers and queues, so the figure should stay flat as
# outputs grow in number and size. Set-up and SGCACHE_BENCH_TMP: bench/lib.sh.
set -euo pipefail
mod=${1:-}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
trap 'rm -rf "$work"' EXIT
unset SGCACHE_DIR SGCACHE_MAX_SIZE SGCACHE_READ_ONLY SGCACHE_WRITE_ONLY SGCACHE_REMOTE
export SGCACHE_DAEMON=off SGCACHE_COMPRESSION=off
[ -x /usr/bin/time ] || { echo "bench/memory.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

if [ -z "$mod" ]; then
  GOPATH=$work/gp GOFLAGS=-modcacherw go mod download golang.org/x/tools@v0.52.0
  cp -r "$work/gp/pkg/mod/golang.org/x/tools@v0.52.0" "$work/xtools"
  chmod -R u+w "$work/xtools"
  mod=$work/xtools
fi
export GOPATH=$work/gp GOFLAGS=-modcacherw
(cd "$mod" && go mod download)

# one LABEL DIR GOCACHE REMOTE GO-ARGS...: a build with sgcache under /usr/bin/time.
one() {
  local label=$1 dir=$2 cache=$3 remote=$4
  shift 4
  local t0 ms rss outs bytes
  t0=$(now)
  (cd "$dir" && GOCACHE=$cache SGCACHE_REMOTE=$remote \
    GOCACHEPROG="/usr/bin/time -o $work/rss -f %M $sg" go "$@" >/dev/null 2>"$work/build.log") ||
    { cat "$work/build.log" >&2; exit 1; }
  ms=$(ms_since "$t0")
  rss=$(tail -1 "$work/rss")
  outs=$(find "$cache" -name '*-d' -type f | wc -l)
  bytes=$(find "$cache" -name '*-d' -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
  printf '%-62s peak RSS %6d KiB  %6d ms  %5d outputs  %6.1f MiB\n' \
    "$label" "$rss" "$ms" "$outs" "$(awk -v b="$bytes" 'BEGIN{print b/1048576}')"
}

src=$(go env GOROOT)/src
one "cold go build std, local only" "$src" "$work/c1" "" build std
one "cold go build std, empty file:// remote" "$src" "$work/c2" "file://$work/r1" build std
one "cold go build ./... (module), local only" "$mod" "$work/c3" "" build ./...
one "cold go build ./... (module), empty file:// remote" "$mod" "$work/c4" "file://$work/r2" build ./...
one "fresh dir + warm file:// remote, go build ./... (module)" "$mod" "$work/c5" "file://$work/r2" build ./...
