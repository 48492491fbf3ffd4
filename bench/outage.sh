#!/usr/bin/env bash
# What a remote that is down, or far, costs a go command, against the plain go command (or a
# local-only sgcache) in the same run:
#
#   bench/outage.sh [PAIRS] [COLD_PAIRS]      (defaults: 9 pairs, 1 cold pair)
#
#   warm `go build` of a small module, silent remote, first go command   - plain   (target <= +1.5 s)
#   the same, each later go command within the down window                - plain   (target <= +50 ms)
#   cold `go build std`, silent remote                                    / plain   (target <= 1.05)
#   warm `go build std`, healthy remote 20 ms away                        / local-only sgcache (target <= 1.02)
#   remote requests of that warm build, counted at the proxy              (target 0)
#
# The silent remote is a loopback listener that accepts connections and never answers (a
# dead proxy, a VPN dropping packets). The healthy remote is nginx from .ci/servers.sh behind
# bench/latency_proxy.rs. Set-up, helpers and SGCACHE_BENCH_TMP: bench/lib.sh.
set -euo pipefail
pairs=${1:-9}
cold_pairs=${2:-1}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
silent_pid=
proxy_pid=
cleanup() {
  [ -n "$silent_pid" ] && kill "$silent_pid" 2>/dev/null
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
unset SGCACHE_DIR SGCACHE_MAX_SIZE SGCACHE_READ_ONLY SGCACHE_WRITE_ONLY SGCACHE_VERBOSE
export SGCACHE_DAEMON=off

echo "sgcache bench/outage.sh  $(go version)  $(nproc) cores  $(date -u +%FT%TZ)"

# A listener that accepts and never answers.
silent_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$silent_port" <<'PY' &
import socket, sys, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1024)
held = []
while True:
    c, _ = s.accept(); held.append(c)
PY
silent_pid=$!
sleep 0.3
silent="http://127.0.0.1:$silent_port/cache"

ms_of() { local t0; t0=$(now); "$@" >/dev/null 2>&1; ms_since "$t0"; }

# --- a small module, warm, silent remote --------------------------------------------------
mod="$work/mod"
mkdir -p "$mod/a" "$mod/b" "$mod/cmd/c"
printf 'module example.com/outage\n\ngo 1.21\n' >"$mod/go.mod"
printf 'package a\n\nimport "strings"\n\nfunc A(s string) string { return strings.ToUpper(s) }\n' >"$mod/a/a.go"
printf 'package b\n\nimport (\n\t"fmt"\n\n\t"example.com/outage/a"\n)\n\nfunc B() string { return fmt.Sprint(a.A("x")) }\n' >"$mod/b/b.go"
printf 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/outage/b"\n)\n\nfunc main() { fmt.Println(b.B()) }\n' >"$mod/cmd/c/main.go"
small="$work/small"
(cd "$mod" && GOCACHE=$small GOCACHEPROG=$sg go build ./... && GOCACHE=$small GOCACHEPROG=$sg go build ./...)
: >"$work/first"; : >"$work/later"
for _ in $(seq "$pairs"); do
  plain=$(cd "$mod" && ms_of env GOCACHE="$small" GOCACHEPROG= go build ./...)
  rm -f "$small"/sgcache/remote-*.down
  first=$(cd "$mod" && ms_of env GOCACHE="$small" GOCACHEPROG="$sg" SGCACHE_REMOTE="$silent" go build ./...)
  later=$(cd "$mod" && ms_of env GOCACHE="$small" GOCACHEPROG="$sg" SGCACHE_REMOTE="$silent" go build ./...)
  echo $((first - plain)) >>"$work/first"
  echo $((later - plain)) >>"$work/later"
done
echo "small module, warm, silent remote: first go command +$(median <"$work/first") ms over plain (target <= +1500 ms); later ones +$(median <"$work/later") ms (target <= +50 ms); medians of $pairs pairs"

# --- cold std, silent remote ---------------------------------------------------------------
: >"$work/cold"
for i in $(seq "$cold_pairs"); do
  plain=$(ms_of env GOCACHE="$work/cold-plain-$i" GOCACHEPROG= go build std)
  ours=$(ms_of env GOCACHE="$work/cold-ours-$i" GOCACHEPROG="$sg" SGCACHE_REMOTE="$silent" go build std)
  awk -v a="$ours" -v b="$plain" 'BEGIN { printf "%.3f\n", a / b }' >>"$work/cold"
  echo "  cold std: plain $plain ms, sgcache with a silent remote $ours ms"
done
echo "cold go build std, silent remote / plain: $(median <"$work/cold") (target <= 1.05)"

# --- warm std, healthy remote at 20 ms -------------------------------------------------------
# shellcheck disable=SC1090
if ! { . <(bash "$root/.ci/servers.sh" env 2>/dev/null) && curl -sS -o /dev/null "${SGCACHE_TEST_HTTP_URL:-x}/"; }; then
  bash "$root/.ci/servers.sh" start >/dev/null
  . <(bash "$root/.ci/servers.sh" env)
fi
latency_proxy "$SGCACHE_TEST_HTTP_URL" 20
export SGCACHE_NAMESPACE="outage-$$-$(date +%s)"
std="$work/std"
# A cold build fills the local tier and the remote; two more settle what the go command puts.
for _ in 1 2 3; do GOCACHE=$std GOCACHEPROG=$sg SGCACHE_REMOTE=$slow_url go build std; done
: >"$work/std-ratios"
for i in $(seq "$pairs"); do
  if ((i % 2)); then
    local_only=$(ms_of env GOCACHE="$std" GOCACHEPROG="$sg" go build std)
    remote=$(ms_of env GOCACHE="$std" GOCACHEPROG="$sg" SGCACHE_REMOTE="$slow_url" go build std)
  else
    remote=$(ms_of env GOCACHE="$std" GOCACHEPROG="$sg" SGCACHE_REMOTE="$slow_url" go build std)
    local_only=$(ms_of env GOCACHE="$std" GOCACHEPROG="$sg" go build std)
  fi
  awk -v a="$remote" -v b="$local_only" 'BEGIN { printf "%.3f\n", a / b }' >>"$work/std-ratios"
done
requests=$(GOCACHE=$std GOCACHEPROG=$sg SGCACHE_REMOTE=$slow_url SGCACHE_VERBOSE=json go build std 2>&1 | python3 -c '
import json, sys
m = [json.loads(l)["sgcache"]["metrics"] for l in sys.stdin if l.startswith("{\"sgcache\"")][-1]
print(m["remote_hits"] + m["remote_misses"] + m["remote_errors"] + m["uploads"] + m["manifests_stored"] + m["packs_stored"])')
echo "warm go build std, remote 20 ms away / local-only sgcache: $(median <"$work/std-ratios") (target <= 1.02; $pairs pairs); remote operations in a warm build: $requests (target 0)"
