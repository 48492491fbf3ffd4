#!/usr/bin/env bash
# Shared-daemon figures, in-process vs daemon, paired runs in alternating order:
#
#   bench/daemon.sh [PAIRS] [LATENCY_PAIRS]      (defaults: 5 pairs, 0 latency pairs)
#
# 1. warm local directory, file:// remote configured, 4 concurrent `go build` of different
#    std package groups (net/..., crypto/..., go/..., encoding/...): daemon / in-process
#    (target <= 1.0 within noise).
# 2. (LATENCY_PAIRS > 0, needs the nginx WebDAV server of .ci/servers.sh already running;
#    this script never starts or stops servers) fresh local directory + warm remote with
#    20 ms per request through bench/latency_proxy.rs, `go build std`, prefetch on:
#    daemon / in-process.
#
# Set-up, helpers and SGCACHE_BENCH_TMP: bench/lib.sh.
set -euo pipefail
pairs=${1:-5}
lat_pairs=${2:-0}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
proxy_pid=
daemon_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
unset SGCACHE_DIR SGCACHE_MAX_SIZE SGCACHE_READ_ONLY SGCACHE_WRITE_ONLY SGCACHE_DAEMON SGCACHE_DAEMON_IDLE
mkdir -p "$work/run"
export XDG_RUNTIME_DIR=$work/run GOCACHEPROG=$sg SGCACHE_UPLOAD_DEADLINE=10m SGCACHE_VERBOSE=1


echo "sgcache bench/daemon.sh  $(go version)  $(nproc) cores  $(date -u +%FT%TZ)"

# --- 1. warm local, 4 concurrent builds (PAIRS=0 skips it) --------------------------------
if ((pairs > 0)); then
export GOCACHE=$work/cache SGCACHE_REMOTE="file://$work/remote" SGCACHE_NAMESPACE=bench
groups=(net/... crypto/... go/... encoding/...)
echo "warming: go build ${groups[*]} (cold, in-process; this takes a while)" >&2
SGCACHE_DAEMON=off go build "${groups[@]}" 2>"$work/seed.log"
grep '^sgcache:' "$work/seed.log" | tail -1 | sed 's/^/seed build: /'
"$sg" daemon 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do "$sg" daemon --status >/dev/null 2>&1 && break; sleep 0.05; done
"$sg" daemon --status >/dev/null || { echo "the daemon did not start" >&2; cat "$work/daemon.log" >&2; exit 1; }

four() { # mode -> ms; every build's summary line in $work/four-<mode>.log
  local t0 pids=()
  : >"$work/four-$1.log"
  t0=$(now)
  for g in "${groups[@]}"; do
    SGCACHE_DAEMON=$1 go build "$g" 2>>"$work/four-$1.log" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  ms_since "$t0"
}
four off >/dev/null
four on >/dev/null
grep -q '(daemon pid' "$work/four-on.log" || { echo "daemon mode did not use the daemon:" >&2; cat "$work/four-on.log" >&2; exit 1; }
grep -q '(in-process)' "$work/four-off.log" || { echo "in-process mode used a daemon" >&2; exit 1; }
: >"$work/r"; : >"$work/in"; : >"$work/dm"
for i in $(seq "$pairs"); do
  if ((i % 2)); then a=$(four off); b=$(four on); else b=$(four on); a=$(four off); fi
  echo "$a" >>"$work/in"; echo "$b" >>"$work/dm"
  awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f\n", b/a}' >>"$work/r"
  echo "  pair $i: in-process $a ms, daemon $b ms" >&2
done
grep '^sgcache:' "$work/four-on.log" | head -1 | sed 's/^/one daemon-mode build: /'
printf 'warm local, 4 concurrent go build (%s): in-process median %s ms, daemon median %s ms, daemon/in-process %sx (median of %s paired ratios; target <= 1.0)\n' \
  "${groups[*]}" "$(median <"$work/in")" "$(median <"$work/dm")" "$(median <"$work/r")" "$pairs"
fi

# --- 2. fresh local + warm remote at 20 ms per request -------------------------------------
if ((lat_pairs > 0)); then
  # shellcheck disable=SC1090
  . <(bash "$root/.ci/servers.sh" env)
  url=${SGCACHE_TEST_HTTP_URL:?needs the nginx server of .ci/servers.sh (not started here)}
  export SGCACHE_NAMESPACE="bench-daemon-$$-$(date +%s)" SGCACHE_REMOTE=$url
  GOCACHE=$work/seed2 SGCACHE_DAEMON=off go build std 2>/dev/null
  latency_proxy "$url" 20
  export SGCACHE_REMOTE=$slow_url
  fresh() { # mode -> ms
    # A new directory each time, none deleted before the end (see bench/remote.sh).
    local t0 dpid= d
    d=$(mktemp -d "$work/fresh.XXXXXX")
    if [ "$1" = on ]; then
      # The daemon serves one local directory: start it for the fresh one (not timed).
      GOCACHE=$d "$sg" daemon 2>>"$work/daemon2.log" &
      dpid=$!
      for _ in $(seq 100); do GOCACHE=$d "$sg" daemon --status >/dev/null 2>&1 && break; sleep 0.05; done
    fi
    t0=$(now)
    GOCACHE=$d SGCACHE_DAEMON=$1 go build std 2>"$work/fresh-$1.log"
    ms_since "$t0"
    if [ -n "$dpid" ]; then GOCACHE=$d "$sg" daemon --stop >/dev/null 2>&1 || true; wait "$dpid" || true; fi
  }
  : >"$work/r2"
  for i in $(seq "$lat_pairs"); do
    if ((i % 2)); then a=$(fresh off); b=$(fresh on); else b=$(fresh on); a=$(fresh off); fi
    awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f\n", b/a}' >>"$work/r2"
    echo "  20ms pair $i: in-process $a ms, daemon $b ms" >&2
  done
  grep '^sgcache:' "$work/fresh-on.log" | tail -1 | sed 's/^/fresh daemon build (20 ms): /'
  printf 'fresh local + warm remote (http), 20 ms per request, go build std: daemon/in-process %sx (median of %s pairs)\n' "$(median <"$work/r2")" "$lat_pairs"
fi
