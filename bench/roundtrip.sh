#!/usr/bin/env bash
# The per-request round trip, sgcache against a responder that does nothing:
#
#   bench/roundtrip.sh [ROUNDS]      (default 3; needs a warm GOCACHE, built here if missing)
#
# Shows how much of a warm build's GOCACHEPROG overhead is sgcache's work and how much is the
# pipe round trip itself (two wake-ups per request), which no helper can avoid.
set -euo pipefail
rounds=${1:-3}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
trap 'rm -rf "$work"' EXIT
export GOCACHE=$work/cache
(cd "$root/bench/roundtrip" && go build -o "$work/roundtrip" .)
rustc -O --edition 2021 -o "$work/floor" "$root/bench/roundtrip/floor.rs"
GOCACHEPROG=$sg go build std
for i in $(seq "$rounds"); do
  echo "sgcache: $("$work/roundtrip" "$sg" | tail -1)"
  echo "floor:   $("$work/roundtrip" "$work/floor" | tail -1)"
done
