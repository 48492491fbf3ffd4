#!/usr/bin/env bash
# Remote-tier figures against every loopback server of .ci/servers.sh (plus file://).
# Usage: bench/remote_bench.sh [extra args for the example, e.g. zstd=off n=500]
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/servers.sh start >/dev/null
# shellcheck disable=SC1090
. <(.ci/servers.sh env)
# PROFILE=dev skips the long release build (dependencies are still built with opt-level 2).
profile=${PROFILE:-release}
cargo build --quiet --profile "$profile" -p sgcache-store --example remote_bench
dir=$profile; [ "$profile" = dev ] && dir=debug
bin=${CARGO_TARGET_DIR:-target}/$dir/examples/remote_bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" "file://$tmp" "$@"
"$bin" "$SGCACHE_TEST_S3_URL" "access_key_id=$SGCACHE_TEST_S3_ACCESS_KEY" "secret_access_key=$SGCACHE_TEST_S3_SECRET_KEY" "$@"
"$bin" "$SGCACHE_TEST_REDIS_URL" "$@"
"$bin" "$SGCACHE_TEST_HTTP_URL" "$@"
"$bin" "$SGCACHE_TEST_AZBLOB_URL" "account_key=$SGCACHE_TEST_AZBLOB_ACCOUNT_KEY" "$@"
"$bin" "$SGCACHE_TEST_GCS_URL" "$@"
