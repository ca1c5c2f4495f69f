#!/usr/bin/env bash
# Runs every test, including the upload tests against a real S3+STS server (moto) and the
# Reverse ETL tests against a real PostgreSQL server, which this script installs (first run
# only), starts on loopback and stops again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/moto.sh
. scripts/postgres.sh
trap 'moto_stop; postgres_stop' EXIT
moto_start
postgres_start
cargo test --all-targets "$@"
