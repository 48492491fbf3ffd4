#!/usr/bin/env bash
# Loopback test servers for the sgcache-store conformance suite.
#
#   .ci/servers.sh install   install what is missing (apt, cargo, go, npm); idempotent
#   .ci/servers.sh start     start all servers on fixed loopback ports, wait until ready,
#                            write the env file (prints its path)
#   .ci/servers.sh env       print the env file (source it: `. <(.ci/servers.sh env)`)
#   .ci/servers.sh stop      stop everything `start` started
#
# Installed binaries are cached outside the repo in $SGCACHE_CI_CACHE
# (default ~/.cache/sgcache-ci); server data lives in a temp dir ($SGCACHE_CI_RUN).
# Works as root on a fresh Debian 12; without root, apt packages must already be present.
set -euo pipefail

CACHE=${SGCACHE_CI_CACHE:-$HOME/.cache/sgcache-ci}
RUN=${SGCACHE_CI_RUN:-${TMPDIR:-/tmp}/sgcache-ci-servers}
BIN=$CACHE/bin
ENV_FILE=$RUN/servers.env
HERE=$(cd "$(dirname "$0")" && pwd)

S3_PORT=19000
REDIS_PORT=16379
NGINX_PORT=18080
AZURITE_PORT=20000
GCS_PORT=14443

S3S_FS_VERSION=0.14.1
FAKE_GCS_VERSION=${FAKE_GCS_VERSION:-v1.56.1}
AZURITE_VERSION=3.35.0

S3_BUCKET=sgcache-test
S3_AK=sgcacheci
S3_SK=sgcacheci-secret-key-0123456789
AZ_ACCOUNT=devstoreaccount1
# Azurite's well-known development key (public, documented by Microsoft).
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

log() { echo "servers.sh: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

install() {
    mkdir -p "$BIN"
    local pkgs=()
    have redis-server || pkgs+=(redis-server)
    have nginx || pkgs+=(nginx)
    if ((${#pkgs[@]})); then
        if [ "$(id -u)" != 0 ]; then log "need root to apt-get install ${pkgs[*]}"; exit 1; fi
        log "apt-get install ${pkgs[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
        # Debian starts the packaged services; we run our own instances on other ports.
        systemctl disable --now redis-server nginx >/dev/null 2>&1 || true
    fi
    # python3 signs the one Azurite request that creates the container.
    have python3 || { log "python3 is required"; exit 1; }

    if [ ! -x "$BIN/s3s-fs" ]; then
        log "cargo install s3s-fs@$S3S_FS_VERSION (about 90 s)"
        cargo install --quiet --locked --root "$CACHE" "s3s-fs@$S3S_FS_VERSION" --features binary
    fi
    if [ ! -x "$BIN/fake-gcs-server" ]; then
        log "go install fake-gcs-server@$FAKE_GCS_VERSION"
        GOBIN=$BIN GOFLAGS=-mod=mod go install "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION"
    fi
    if [ ! -x "$CACHE/node_modules/.bin/azurite-blob" ]; then
        log "npm install azurite@$AZURITE_VERSION"
        npm install --silent --no-audit --no-fund --prefix "$CACHE" "azurite@$AZURITE_VERSION" >/dev/null
    fi
    log "installed into $CACHE"
}

wait_port() { # name port
    for _ in $(seq 1 150); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "$1 did not come up on port $2; see $RUN/$1.log"
    tail -n 20 "$RUN/$1.log" >&2 || true
    return 1
}

spawn() { # name cmd...
    local name=$1; shift
    nohup "$@" >"$RUN/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
}

azurite_create_container() {
    python3 - "$AZURITE_PORT" "$AZ_ACCOUNT" "$AZ_KEY" "$S3_BUCKET" <<'PY'
import base64, hashlib, hmac, sys, urllib.request
from email.utils import formatdate
port, account, key, container = sys.argv[1:]
date = formatdate(usegmt=True)
version = "2021-12-02"
canon_headers = f"x-ms-date:{date}\nx-ms-version:{version}\n"
canon_resource = f"/{account}/{account}/{container}\nrestype:container"
# VERB, then Content-Encoding, -Language, -Length (empty for 0), -MD5, -Type, Date,
# If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range.
ctype = "application/octet-stream"
sts = "PUT\n\n\n\n\n" + ctype + "\n\n\n\n\n\n\n" + canon_headers + canon_resource
sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(
    f"http://127.0.0.1:{port}/{account}/{container}?restype=container", method="PUT", data=b"",
    headers={"x-ms-date": date, "x-ms-version": version, "Content-Type": ctype,
             "Authorization": f"SharedKey {account}:{sig}"})
try:
    urllib.request.urlopen(req)
except urllib.error.HTTPError as e:
    if e.code != 409:  # 409 = already exists
        raise
PY
}

gcs_create_bucket() {
    python3 - "$GCS_PORT" "$S3_BUCKET" <<'PY'
import json, sys, urllib.request
port, bucket = sys.argv[1:]
req = urllib.request.Request(f"http://127.0.0.1:{port}/storage/v1/b", method="POST",
    data=json.dumps({"name": bucket}).encode(), headers={"Content-Type": "application/json"})
try:
    urllib.request.urlopen(req)
except urllib.error.HTTPError as e:
    if e.code != 409:
        raise
PY
}

start() {
    stop >/dev/null 2>&1 || true
    rm -rf "$RUN"; mkdir -p "$RUN"
    local t0=$SECONDS

    mkdir -p "$RUN/s3/$S3_BUCKET"
    spawn s3 "$BIN/s3s-fs" --host 127.0.0.1 --port "$S3_PORT" \
        --access-key "$S3_AK" --secret-key "$S3_SK" "$RUN/s3"

    mkdir -p "$RUN/redis"
    spawn redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --dir "$RUN/redis" --daemonize no

    mkdir -p "$RUN/nginx/www/cache"
    # As root, nginx workers run as `nobody`; let them write the WebDAV tree.
    if [ "$(id -u)" = 0 ]; then chown -R nobody "$RUN/nginx/www"; fi
    sed -e "s#@DIR@#$RUN/nginx#g" -e "s#@PORT@#$NGINX_PORT#g" "$HERE/servers/nginx.conf.in" >"$RUN/nginx/nginx.conf"
    nginx -c "$RUN/nginx/nginx.conf" -e "$RUN/nginx/nginx-error.log" >"$RUN/nginx.log" 2>&1
    cp "$RUN/nginx/nginx.pid" "$RUN/nginx.pid"

    mkdir -p "$RUN/azurite"
    spawn azurite "$CACHE/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
        --location "$RUN/azurite" --skipApiVersionCheck --disableProductStyleUrl --silent

    mkdir -p "$RUN/gcs"
    spawn gcs "$BIN/fake-gcs-server" -scheme http -host 127.0.0.1 -port "$GCS_PORT" \
        -backend filesystem -filesystem-root "$RUN/gcs" -public-host "127.0.0.1:$GCS_PORT" -log-level warn

    wait_port s3 "$S3_PORT"
    wait_port redis "$REDIS_PORT"
    wait_port nginx "$NGINX_PORT"
    wait_port azurite "$AZURITE_PORT"
    wait_port gcs "$GCS_PORT"
    azurite_create_container
    gcs_create_bucket

    cat >"$ENV_FILE" <<ENV
export SGCACHE_TEST_S3_URL='s3://$S3_BUCKET/ci?region=us-east-1&endpoint=http://127.0.0.1:$S3_PORT'
export SGCACHE_TEST_S3_ACCESS_KEY='$S3_AK'
export SGCACHE_TEST_S3_SECRET_KEY='$S3_SK'
export SGCACHE_TEST_S3_DATA='$RUN/s3/$S3_BUCKET/ci'
export SGCACHE_TEST_REDIS_URL='redis://127.0.0.1:$REDIS_PORT/0'
export SGCACHE_TEST_HTTP_URL='http://127.0.0.1:$NGINX_PORT/cache'
export SGCACHE_TEST_HTTP_DATA='$RUN/nginx/www/cache'
export SGCACHE_TEST_AZBLOB_URL='azblob://$S3_BUCKET/ci?endpoint=http://127.0.0.1:$AZURITE_PORT/$AZ_ACCOUNT&account_name=$AZ_ACCOUNT'
export SGCACHE_TEST_AZBLOB_ACCOUNT_KEY='$AZ_KEY'
export SGCACHE_TEST_GCS_URL='gs://$S3_BUCKET/ci?endpoint=http://127.0.0.1:$GCS_PORT&anonymous=true'
ENV
    log "all servers up in $((SECONDS - t0)) s; env file: $ENV_FILE"
    echo "$ENV_FILE"
}

stop() {
    [ -d "$RUN" ] || return 0
    local pids=()
    for f in "$RUN"/*.pid; do
        [ -e "$f" ] || continue
        pids+=("$(cat "$f")")
        rm -f "$f"
    done
    ((${#pids[@]})) || return 0
    kill "${pids[@]}" 2>/dev/null || true
    # Wait until they are gone, so an immediate `start` finds the ports free.
    for _ in $(seq 1 50); do
        kill -0 "${pids[@]}" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
    log "stopped"
}

case ${1:-} in
    install) install ;;
    start) start ;;
    stop) stop ;;
    env) cat "$ENV_FILE" ;;
    *) echo "usage: $0 {install|start|stop|env}" >&2; exit 2 ;;
esac
