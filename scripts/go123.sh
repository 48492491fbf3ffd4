#!/usr/bin/env bash
# Installs the Go 1.23 toolchain the version-compatibility test runs against, built once with
# GOEXPERIMENT=cacheprog so that it speaks GOCACHEPROG (Go 1.21-1.23 only honour GOCACHEPROG
# when the go command itself was built with that experiment; they send `ObjectID`, not
# `OutputID`). Prints the GOROOT on stdout; everything else goes to stderr.
#
#   bash scripts/go123.sh                   # build if missing, print GOROOT
#   SGCACHE_GO123=$(bash scripts/go123.sh) cargo test -p sgcache --test e2e -- reliability_compat
#
# Source: Debian bookworm-backports `golang-1.23-go` + `golang-1.23-src` (fetched with
# `apt-get download`, unpacked in a temp directory, nothing installed system-wide). The
# packaged binaries are the bootstrap toolchain for `make.bash`. The result lives outside the
# repository, in ${SGCACHE_CI_CACHE:-~/.cache/sgcache-ci}/go1.23-cacheprog, so CI keeps it
# between runs; a stamp file marks a finished build, so a rerun is a no-op (an interrupted
# build is redone from scratch). Needs root only when bookworm-backports is not configured yet.
set -euo pipefail

cache=${SGCACHE_CI_CACHE:-$HOME/.cache/sgcache-ci}
dest=$cache/go1.23-cacheprog
stamp=$dest/.sgcache-cacheprog-built
pkgs=(golang-1.23-go golang-1.23-src)

if [ -f "$stamp" ] && [ -x "$dest/bin/go" ]; then
  echo "$dest"
  exit 0
fi

log() { echo "go123.sh: $*" >&2; }

if ! apt-cache show golang-1.23-go >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    log "golang-1.23-go is not in any configured apt source; as root, run:"
    log "  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list; apt-get update"
    exit 1
  fi
  log "adding bookworm-backports to the apt sources"
  echo 'deb http://deb.debian.org/debian bookworm-backports main' >/etc/apt/sources.list.d/backports.list
  apt-get update -qq
fi

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
started=$(date +%s)
log "downloading ${pkgs[*]}"
# `apt-get download` writes into the current directory; the _apt sandbox user may not be able
# to, which only costs a warning.
(cd "$work" && apt-get download -qq "${pkgs[@]}" 2>&1 | grep -v 'unsandboxed' >&2 || true)
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$work/root"
done
boot=$work/root/usr/lib/go-1.23
[ -x "$boot/bin/go" ] || { log "unpacked packages hold no $boot/bin/go"; exit 1; }

# A self-contained GOROOT: Debian's tree is /usr/lib/go-1.23 with src, api, misc and test as
# symlinks into /usr/share/go-1.23; copy with the symlinks resolved.
rm -rf "$dest" "$dest.tmp"
mkdir -p "$cache"
cp -rL "$boot" "$dest.tmp"
chmod -R u+w "$dest.tmp"
# Debian ships no lib/time/zoneinfo.zip (it uses the tzdata package), but cmd/dist embeds it
# into time/tzdata. Any zoneinfo.zip will do for our purpose: take the machine's go command's.
if [ ! -f "$dest.tmp/lib/time/zoneinfo.zip" ]; then
  zip=""
  if command -v go >/dev/null 2>&1; then
    zip="$(go env GOROOT 2>/dev/null)/lib/time/zoneinfo.zip"
  fi
  [ -f "$zip" ] || { log "no lib/time/zoneinfo.zip to embed (need a go command on PATH)"; exit 1; }
  mkdir -p "$dest.tmp/lib/time"
  cp "$zip" "$dest.tmp/lib/time/zoneinfo.zip"
fi
log "building $(cat "$dest.tmp/VERSION" | head -1) with GOEXPERIMENT=cacheprog (make.bash)"
(
  cd "$dest.tmp/src"
  env -u GOROOT -u GOPATH -u GOFLAGS -u GOCACHEPROG -u GOCACHE \
    GOROOT_BOOTSTRAP="$boot" GOEXPERIMENT=cacheprog GOTOOLCHAIN=local GOENV=off \
    GOTELEMETRY=off ./make.bash >&2
)
mv "$dest.tmp" "$dest"
# The stamp says: complete, and built with the experiment (checked by `go env`).
if ! GOTOOLCHAIN=local GOENV=off "$dest/bin/go" version >&2; then
  log "the built go command does not run"
  exit 1
fi
touch "$stamp"
log "done in $(($(date +%s) - started)) s"
echo "$dest"
