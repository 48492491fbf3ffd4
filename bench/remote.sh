#!/usr/bin/env bash
# Remote-tier figures for `go build std`, against a warm local build in the same run:
#
#   bench/remote.sh [PAIRS] [BACKEND]     (defaults: 5 pairs, s3; BACKEND: s3 | http | redis | file)
#
#   fresh local directory + warm remote, 0 ms added latency   / warm local   (target <= 1.5, <= 1.3)
#   the floor of that figure on this machine                  / warm local   (see below)
#   fresh local directory + warm remote, 20 ms per request    / warm local   (target <= 2)
#   the same, `sgcache prefetch` started N s before the build / warm local   (N in
#       SGCACHE_BENCH_HEADSTART, default "0 2 5"; target <= 1.25 at 5 s)
#   fresh local directory + warm remote, 100 ms per request   / warm local   (target <= 3)
#   remote traffic of the build, compressed (zstd 3) vs raw object bytes
#
# SGCACHE_BENCH_SIGNED=1 adds, in the same run, the 0 ms and 20 ms series with Ed25519
# signing on: a second namespace seeded by a job holding SGCACHE_SIGNING_KEY, read by fresh
# builds that accept only that key (SGCACHE_TRUSTED_KEYS), so every entry and manifest read
# is verified.
#
# The floor: bench/roundtrip/floor.rs with COPY_FROM, a GOCACHEPROG yardstick whose "remote"
# is the warm directory itself, free and instant: it copies every output into the fresh
# directory (a background thread in manifest order, plus on demand), with no network, no
# verification and no index entries, so no cache that must fill a fresh directory can beat
# it on this machine.
#
# The servers come from .ci/servers.sh (started here). The 20 ms case puts a small TCP
# proxy in front of the server that holds every client->server chunk for 20 ms, i.e.
# every request pays 20 ms before the server sees it.
#
# Set-up, helpers and SGCACHE_BENCH_TMP: bench/lib.sh.
set -euo pipefail
pairs=${1:-5}
backend=${2:-s3}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
proxy_pid=
cleanup() { [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
unset SGCACHE_DIR SGCACHE_MAX_SIZE SGCACHE_READ_ONLY SGCACHE_WRITE_ONLY

if [ "$backend" != file ]; then
  # Reuse running servers (restarting them would wipe what other runs use); else start them.
  # shellcheck disable=SC1090
  if ! { . <(bash "$root/.ci/servers.sh" env 2>/dev/null) && curl -sS -o /dev/null "${SGCACHE_TEST_HTTP_URL:-x}/"; }; then
    bash "$root/.ci/servers.sh" start >/dev/null
    . <(bash "$root/.ci/servers.sh" env)
  fi
fi
export AWS_ACCESS_KEY_ID=${SGCACHE_TEST_S3_ACCESS_KEY:-} AWS_SECRET_ACCESS_KEY=${SGCACHE_TEST_S3_SECRET_KEY:-}
case $backend in
  s3) url=$SGCACHE_TEST_S3_URL ;;
  http) url=$SGCACHE_TEST_HTTP_URL ;;
  redis) url=$SGCACHE_TEST_REDIS_URL ;;
  file) url="file://$work/remote" ;;
  *) echo "unknown backend $backend" >&2; exit 2 ;;
esac
# A fresh namespace per run, so the remote is warmed by this run only.
export SGCACHE_NAMESPACE="bench-$$-$(date +%s)"
export SGCACHE_UPLOAD_DEADLINE=10m SGCACHE_VERBOSE=1


echo "sgcache bench/remote.sh  backend $backend  $(go version)  $(nproc) cores  $(date -u +%FT%TZ)"

# One cold build fills the warm local directory and uploads everything.
warm="$work/warm"
GOCACHE=$warm GOCACHEPROG=$sg SGCACHE_REMOTE=$url go build std 2>"$work/seed.log"
grep '^sgcache:' "$work/seed.log" | tail -1 | sed 's/^/seed build: /'
# The floor yardstick reads the warm directory's index, oldest first (the order the seed
# build made its entries, i.e. dependency order, the order a build asks for them).
rustc -O --edition 2021 -o "$work/floor" "$root/bench/roundtrip/floor.rs"
cat "$warm"/??/*-a | awk '{print $2, $3, $4, $5}' | sort -k4,4n >"$work/index"

# Every fresh directory is new and none is deleted before the end: on this machine's ext4
# (no journal) inodes freed in the last minutes make every file creation scan past them,
# which would bill the fresh build for the previous run's `rm -rf` (a real fresh runner has
# no such history).
run_fresh() { # url -> ms; leaves the summary line in $work/fresh.log
  local t0 d
  d=$(mktemp -d "$work/fresh.XXXXXX")
  t0=$(now)
  GOCACHE=$d GOCACHEPROG=$sg SGCACHE_REMOTE=$1 go build std 2>"$work/fresh.log"
  ms_since "$t0"
}
run_floor() {
  local t0 d
  d=$(mktemp -d "$work/floor.XXXXXX")
  t0=$(now)
  GOCACHE=$d GOCACHEPROG=$work/floor PRELOADED_INDEX=$work/index COPY_FROM=$warm go build std
  ms_since "$t0"
}
run_warm() {
  local t0
  t0=$(now)
  GOCACHE=$warm GOCACHEPROG= go build std
  ms_since "$t0"
}

pair_series() { # url label [floor]: median fresh/warm (and floor/warm into $work/rf)
  : >"$work/r"; : >"$work/rf"
  local fl=
  for i in $(seq "$pairs"); do
    if ((i % 2)); then w=$(run_warm); f=$(run_fresh "$1"); else f=$(run_fresh "$1"); w=$(run_warm); fi
    awk -v f="$f" -v w="$w" 'BEGIN {printf "%.3f\n", f/w}' >>"$work/r"
    if [ -n "${3:-}" ]; then
      fl=$(run_floor)
      awk -v f="$fl" -v w="$w" 'BEGIN {printf "%.3f\n", f/w}' >>"$work/rf"
      fl=", floor $fl ms"
    fi
    echo "  $2 pair $i: warm local $w ms, fresh+remote $f ms$fl" >&2
  done
  median <"$work/r"
}

# Signed (SGCACHE_BENCH_SIGNED=1): a second namespace, seeded by a signing job; the fresh
# builds of the signed series trust only its key.
signed=${SGCACHE_BENCH_SIGNED:-}
if [ -n "$signed" ]; then
  keys=$("$sg" keygen)
  signing_key=$(sed -n 's/^SGCACHE_SIGNING_KEY=//p' <<<"$keys")
  trusted_keys=$(sed -n 's/^SGCACHE_TRUSTED_KEYS=//p' <<<"$keys")
  GOCACHE=$(mktemp -d "$work/seed-signed.XXXXXX") GOCACHEPROG=$sg SGCACHE_REMOTE=$url \
    SGCACHE_NAMESPACE=$SGCACHE_NAMESPACE-signed SGCACHE_SIGNING_KEY=$signing_key \
    go build std 2>"$work/seed-signed.log"
  grep '^sgcache:' "$work/seed-signed.log" | tail -1 | sed 's/^/seed build (signed): /'
fi
signed_series() { # url label: pair_series with signing on
  SGCACHE_NAMESPACE=$SGCACHE_NAMESPACE-signed SGCACHE_TRUSTED_KEYS=$trusted_keys pair_series "$1" "$2"
}

run_warm >/dev/null
r0=$(pair_series "$url" "0ms" floor)
grep '^sgcache:' "$work/fresh.log" | tail -1 | sed 's/^/fresh build (0 ms): /'
printf 'fresh local + warm remote (%s), 0 ms added: %sx a warm local build (median of %s pairs; targets <= 1.5, <= 1.3)\n' "$backend" "$r0" "$pairs"
printf 'floor (a free, instant remote: copying the outputs, nothing verified): %sx a warm local build\n' "$(median <"$work/rf")"
if [ -n "$signed" ]; then
  r0s=$(signed_series "$url" "0ms signed")
  grep '^sgcache:' "$work/fresh.log" | tail -1 | sed 's/^/fresh build (0 ms, signed): /'
  printf 'the same with signing on (signed entries and manifests, verified): %sx a warm local build (unsigned: %sx)\n' "$r0s" "$r0"
fi

# A CI job with a head start: `sgcache prefetch` (the shared daemon of the fresh directory)
# starts N seconds before `go build std`; the build alone is timed (for N = 0, from the
# prefetch command on). The daemon is stopped after each build.
run_headstart() { # url N -> ms
  local t0 d
  d=$(mktemp -d "$work/head.XXXXXX")
  t0=$(now)
  GOCACHE=$d SGCACHE_DIR=$d SGCACHE_REMOTE=$1 SGCACHE_DAEMON=auto "$sg" prefetch >/dev/null
  if [ "$2" != 0 ]; then sleep "$2"; t0=$(now); fi
  GOCACHE=$d GOCACHEPROG=$sg SGCACHE_REMOTE=$1 SGCACHE_DAEMON=on go build std 2>"$work/head.log"
  ms_since "$t0"
  GOCACHE=$d SGCACHE_DIR=$d SGCACHE_REMOTE=$1 "$sg" daemon --stop >/dev/null 2>&1 || true
}
headstart_series() { # url N
  : >"$work/rh"
  for i in $(seq "$pairs"); do
    w=$(run_warm); h=$(run_headstart "$1" "$2")
    awk -v f="$h" -v w="$w" 'BEGIN {printf "%.3f\n", f/w}' >>"$work/rh"
    echo "  head start ${2}s pair $i: warm local $w ms, build after prefetch $h ms" >&2
  done
  median <"$work/rh"
}

# 20 ms per request through a delaying proxy (TCP backends only).
if [ "$backend" != file ]; then
  latency_proxy "$url" 20
  r20=$(pair_series "$slow_url" "20ms")
  grep '^sgcache:' "$work/fresh.log" | tail -1 | sed 's/^/fresh build (20 ms): /'
  printf 'fresh local + warm remote (%s), 20 ms added per request: %sx a warm local build (median of %s pairs; target <= 2)\n' "$backend" "$r20" "$pairs"
  if [ -n "$signed" ]; then
    r20s=$(signed_series "$slow_url" "20ms signed")
    printf 'the same with signing on: %sx a warm local build (unsigned: %sx)\n' "$r20s" "$r20"
  fi
  for n in ${SGCACHE_BENCH_HEADSTART:-0 2 5}; do
    rh=$(headstart_series "$slow_url" "$n")
    grep '^sgcache:' "$work/head.log" | tail -1 | sed "s/^/build after a $n s head start: /"
    printf 'the same, sgcache prefetch started %s s ahead: %sx a warm local build (median of %s pairs; target <= 1.25 at 5 s)\n' "$n" "$rh" "$pairs"
  done
  kill "$proxy_pid" 2>/dev/null || true
  latency_proxy "$url" 100
  r100=$(pair_series "$slow_url" "100ms")
  grep '^sgcache:' "$work/fresh.log" | tail -1 | sed 's/^/fresh build (100 ms): /'
  printf 'fresh local + warm remote (%s), 100 ms added per request: %sx a warm local build (median of %s pairs; target <= 3)\n' "$backend" "$r100" "$pairs"
fi

# Traffic: what the seed build uploaded vs the raw bytes it stored (framed backends, i.e.
# all but the plain http layout, compress with zstd level 3 unless SGCACHE_COMPRESSION=off).
awk '/^sgcache:/ {
  for (i = 1; i <= NF; i++) {
    if ($i ~ /^remote_bytes_up=/) { split($i, a, "="); up = a[2] }
    if ($i ~ /^pack_bytes_up=/) { split($i, a, "="); packs = a[2] }
  }
}
END { printf "remote traffic uploading go build std: %.1f MiB (objects %.1f MiB, packs %.1f MiB)\n", up/1048576, (up-packs)/1048576, packs/1048576 }' "$work/seed.log"
grep -o '[0-9.]* [KMG]iB in' "$work/seed.log" | tail -1 | sed 's/^/raw bytes put by the go command: /'
