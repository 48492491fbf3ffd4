#!/usr/bin/env bash
# Regenerates the knob table of docs/configuration.md from the CLI declaration
# (`sgcache config-table`); a unit test fails when the two drift.
set -euo pipefail
cd "$(dirname "$0")/.."
table=$(cargo run --quiet -p sgcache -- config-table)
python3 - "$table" <<'PY'
import re, sys
p = "docs/configuration.md"
s = open(p).read()
start = s.index("| Variable | Flag | Default | Meaning |")
end = start
lines = s[start:].split("\n")
n = 0
while n < len(lines) and lines[n].startswith("|"):
    n += 1
old = "\n".join(lines[:n])
open(p, "w").write(s.replace(old, sys.argv[1].rstrip("\n"), 1))
PY
