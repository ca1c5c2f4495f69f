#!/usr/bin/env bash
# Runs every test, including the upload tests against a real S3+STS server (moto), the
# Reverse ETL tests against a real PostgreSQL server, the consume tests against a real
# Kafka-protocol broker (tansu), which this script installs (first run only), starts on
# loopback and stops again, and the format tests, which read files back with pyarrow,
# DuckDB, gpg and zstd (scripts/readers.sh), and the client tests, which send to `serve` with
# Segment's analytics-python and analytics-node (scripts/clients.sh). With CI=true it then
# runs scripts/fuzz.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/moto.sh
. scripts/postgres.sh
. scripts/readers.sh
. scripts/kafka.sh
. scripts/clients.sh
readers_install
clients_install
trap 'moto_stop; postgres_stop; kafka_stop' EXIT
moto_start
postgres_start
kafka_start
cargo test --all-targets "$@"
# CI also fuzzes every target for a few seconds (nightly; cargo-fuzz is installed if
# missing); a developer runs scripts/fuzz.sh when they want to.
if [ "${CI:-}" = true ]; then
    scripts/fuzz.sh
fi
