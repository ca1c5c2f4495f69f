#!/usr/bin/env bash
# Reverse ETL benchmark: a 1M-row model in a throwaway PostgreSQL cluster (scripts/postgres.sh),
# a first `retl` run (every row new), then 1% of the rows changed and the diff timed: wall
# time and peak RSS of the second run.
#
#   ./scripts/bench-retl.sh              # 1,000,000 rows
#   ./scripts/bench-retl.sh 100000       # another size
#   S3ACTIONS_BIN=path ./scripts/bench-retl.sh   # an already built binary
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
. scripts/postgres.sh
trap postgres_stop EXIT
postgres_start
BIN="${S3ACTIONS_BIN:-target/release/s3actions}"
if [ -z "${S3ACTIONS_BIN:-}" ]; then
    cargo build --release --quiet
fi
work=bench-data/retl
rm -rf "$work"
mkdir -p "$work"
url="${S3ACTIONS_TEST_POSTGRES/s3actions@/s3actions:\$\{PGPW\}@}"
psql_url="${S3ACTIONS_TEST_POSTGRES/s3actions@/s3actions:$S3ACTIONS_TEST_POSTGRES_PASSWORD@}"
psql() { "$(postgres_bin)/psql" "$psql_url" -q -v ON_ERROR_STOP=1 "$@"; }
psql -c "create table customers (id text primary key, email text, plan text, ltv numeric(10,2), updated_at timestamptz)"
psql -c "insert into customers select 'user_' || g, 'e' || g || '@example.com', 'free', g / 100.0, now() from generate_series(1, $ROWS) g"
cat > "$work/retl.yaml" <<YAML
settings:
  state_dir: $work/state
models:
  - id: mdl_customers
    connection: $url
    query: "select id, email, plan, ltv, updated_at from customers"
    identifier: id
    user_id_column: id
mappings:
  - name: upserts
    trigger: 'event = "new" or event = "updated"'
    columns:
      id: { "@path": "\$.properties.id" }
      email: { "@path": "\$.properties.email" }
      plan: { "@path": "\$.properties.plan" }
      operation: { "@path": "\$.event" }
  - name: deletes
    trigger: 'event = "deleted"'
    columns:
      id: { "@path": "\$.properties.id" }
YAML
export PGPW="$S3ACTIONS_TEST_POSTGRES_PASSWORD"
"$BIN" retl "$work/retl.yaml" --out "$work/out1" --json > /dev/null
psql -c "update customers set plan = 'pro' where id like '%00'"
start=$(date +%s%N)
summary=$("$BIN" retl "$work/retl.yaml" --out "$work/out2" --json)
end=$(date +%s%N)
python3 - "$summary" "$start" "$end" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); start, end = int(sys.argv[2]), int(sys.argv[3])
m = s["models"][0]
print(f"rows {m['rows']:,}: {m['new']:,} new, {m['updated']:,} updated, {m['deleted']:,} deleted; "
      f"wall {(end - start) / 1e9:.2f} s, peak RSS {s['peak_rss_mb']:.0f} MiB")
PY
rm -rf "$work"
