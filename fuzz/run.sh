#!/usr/bin/env bash
# Runs every sgcache fuzz target for a fixed time (default 20 s each), starting from a seed
# corpus. CI calls this (through scripts/test.sh). It installs what it needs when missing: the
# nightly toolchain (rustup) and cargo-fuzz (`cargo install cargo-fuzz --locked`, ~1 min).
#
#   fuzz/run.sh            # each target for 20 s
#   fuzz/run.sh 300        # each target for 5 min
#   fuzz/run.sh --replay   # only replay the corpus (bounded, deterministic)
#   FUZZ_TARGETS="buildid_read" fuzz/run.sh 60
#
# Seeds: Go's buildid test vectors are decoded from $(go env GOROOT) when there is a go
# command (they are not copied into this repository), plus a few tiny hand-made headers.
set -euo pipefail
cd "$(dirname "$0")"

mode=time
secs=20
case "${1:-}" in
  --replay) mode=replay ;;
  "") ;;
  *) secs=$1 ;;
esac

# A fresh machine has neither; installing is idempotent and quick when both are present.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "run.sh: installing the nightly toolchain (rustup toolchain install nightly)" >&2
  rustup toolchain install nightly --profile minimal >&2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "run.sh: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
  cargo install cargo-fuzz --locked --quiet >&2
fi

targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT

if goroot=$(go env GOROOT 2>/dev/null) && [ -d "$goroot/src/cmd/internal/buildid/testdata" ]; then
  for f in "$goroot"/src/cmd/internal/buildid/testdata/*.base64; do
    base64 -d <"$f" >"$seeds/$(basename "$f" .base64)"
  done
else
  echo "run.sh: no go command; seeding without Go's buildid test vectors" >&2
fi
printf '!<arch>\n__.PKGDEF       0           0     0     644     99        `\ngo object linux amd64 go1.26 X:none\nbuild id "a/b"\n\n' >"$seeds/archive"
printf '\x7fELF\x02\x01\x01\x00' >"$seeds/elf-head"
printf '\xcf\xfa\xed\xfe\x07\x00\x00\x01' >"$seeds/macho-head"
printf 'MZ junk \xff Go build ID: "x/y"\n \xff tail' >"$seeds/raw"
# A pack of one object ("hello"), a manifest of one record, one pack and one miss, and action entries
# (unsigned, and with a key id and signature in place), for remote_formats.
{ printf 'sgp1\x01\x00\x00\x00'; head -c 32 /dev/zero; printf '\x05\0\0\0\0\0\0\0hello'; } >"$seeds/pack"
{ printf 'sgm4\x01\x00\x00\x00'; head -c 80 /dev/zero; printf '\x01\x00\x00\x00'; head -c 40 /dev/zero; printf '\x01\x00\x00\x00'; head -c 32 /dev/zero; } >"$seeds/manifest"
printf 'sgc2 %s 5 1700000000000000000\n' "$(printf '2c%.0s' $(seq 32))" >"$seeds/entry"
printf 'sgc2 %s 5 1 %s %s\n' "$(printf '2c%.0s' $(seq 32))" "$(printf 'ab%.0s' $(seq 8))" "$(printf '01%.0s' $(seq 64))" >"$seeds/entry-signed"
# For explain_transcript: a real compile hash (Go 1.26.8, its sum verifies) with a file hash,
# a subkey, a test-cache line and a compiler message; and the same followed by NUL and an
# action graph naming it.
transcript='HASH[build example.com/m/leaf]
HASH[build example.com/m/leaf]: "go1.26.8"
HASH[build example.com/m/leaf]: "compile\n"
HASH[build example.com/m/leaf]: "dir /tmp/ex/m/leaf\n"
HASH[build example.com/m/leaf]: "go 1.26\n"
HASH[build example.com/m/leaf]: "goos linux goarch amd64\n"
HASH[build example.com/m/leaf]: "import \"example.com/m/leaf\"\n"
HASH[build example.com/m/leaf]: "omitdebug false standard false local false prefix \"\"\n"
HASH[build example.com/m/leaf]: "compile compile version go1.26.8 [] []\n"
HASH[build example.com/m/leaf]: "GOAMD64=v1\n"
HASH[build example.com/m/leaf]: "file leaf.go szUVfFE4d4ebpQ9R4u9K\n"
HASH[build example.com/m/leaf]: 8197de2177c040b0290a6944e15440ddb5616461115ebf4bed5f85deafdebf55
HASH /usr/local/go/src/unicode/utf8/utf8.go: 0a6e0c6f4b5b4e0d9c4e5c8f0e2c6f3a1b2c3d4e5f60718293a4b5c6d7e8f901
HASH subkey 8197de2177c040b0290a6944e15440ddb5616461115ebf4bed5f85deafdebf55 "stdout" = 16a8297af0b049c34ee884ba0668da9eff7a6861c9bd06f39754e49e992884ee
testcache: example.com/m/leaf: input list not found: cache entry not found
leaf/leaf.go:3:1: a compiler message
'
printf '%s' "$transcript" >"$seeds/transcript"
{ printf '%s\0' "$transcript"; printf '[{"ID":0,"Mode":"build","Package":"example.com/m/leaf","ActionID":"gZfeIXfAQLApCmlE4VRA","Cmd":["compile"]},{"ID":1,"Mode":"vet","Package":"example.com/m/leaf","Deps":[0]}]'; } >"$seeds/transcript-graph"
# A well-formed GOCACHEPROG stream (put "hello", get, close) for the protocol targets.
printf '{"ID":1,"Command":"put","ActionID":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","OutputID":"LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=","BodySize":5}\n\n"aGVsbG8="\n{"ID":2,"Command":"get","ActionID":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}\n\n{"ID":3,"Command":"close"}\n\n' >"$seeds/stream"

for t in $targets; do
  corpus="corpus/$t"
  mkdir -p "$corpus"
  # For find_and_hash the first two bytes choose the ID length and buffer size.
  for s in "$seeds"/*; do
    if [ "$t" = buildid_find_and_hash ]; then
      { printf '\x14\x07'; cat "$s"; } >"$corpus/seed-$(basename "$s")"
    else
      cp "$s" "$corpus/seed-$(basename "$s")"
    fi
  done
  if [ "$mode" = replay ]; then
    cargo +nightly fuzz run "$t" "$corpus" -- -runs=0 -rss_limit_mb=1024 -malloc_limit_mb=256
  else
    cargo +nightly fuzz run "$t" "$corpus" -- -max_total_time="$secs" -rss_limit_mb=1024 -malloc_limit_mb=256 -max_len=262144
  fi
done
