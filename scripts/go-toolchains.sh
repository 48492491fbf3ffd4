#!/usr/bin/env bash
# The Go release lines the end-to-end tests run against besides this machine's own go: the
# patch of each line pinned below (fixed, so CI runs are repeatable), downloaded by the go command itself
# (GOTOOLCHAIN=<version>) into its module cache, which persists between CI runs. Prints the
# versions that run, space-separated, on stdout; a version that cannot be had is said on
# stderr and left out (the toolchains test then says which it skips).
#
#   SGCACHE_GO_TOOLCHAINS="$(bash scripts/go-toolchains.sh)" cargo test -p sgcache --test e2e toolchains
#
# Go 1.23 (GOCACHEPROG behind GOEXPERIMENT=cacheprog) is built by scripts/go123.sh instead.
set -euo pipefail
versions=${SGCACHE_GO_VERSIONS:-"go1.24.13 go1.25.14 go1.27.4"}
ok=()
for v in $versions; do
  if out=$(GOTOOLCHAIN=$v GOFLAGS= timeout 600 go version 2>&1) && [[ $out == *"$v "* ]]; then
    ok+=("$v")
  else
    echo "go-toolchains.sh: $v unavailable: ${out##*$'\n'}" >&2
  fi
done
echo "${ok[*]}"
