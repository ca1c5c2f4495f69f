#!/usr/bin/env bash
# Runs every test, including the upload tests against a real S3+STS server (moto), which
# this script installs (first run only), starts on loopback and stops again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/moto.sh
trap moto_stop EXIT
moto_start
cargo test --all-targets "$@"
