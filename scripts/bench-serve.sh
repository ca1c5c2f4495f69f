#!/usr/bin/env bash
# Benchmark of `serve`: acknowledged events/s and request latency over loopback. Generates
# realistic events with gen_events.py (deterministic), starts `serve` on a free port with
# `--out DIR` and any extra serve arguments given, posts the events as /v1/batch requests of
# 100 from several concurrent keep-alive senders (examples/serve_load.rs), then stops the
# server with SIGTERM (which writes every open batch) and checks it read every event.
#
#   ./scripts/bench-serve.sh                        # 4 senders, 200,000 events
#   SENDERS=8 EVENTS=500000 ./scripts/bench-serve.sh
#   ./scripts/bench-serve.sh --durability fsync     # extra arguments go to serve
#   DEDUPE_WINDOW=off ./scripts/bench-serve.sh      # without de-duplication (default 24h)
set -euo pipefail
cd "$(dirname "$0")/.."
GEN="${GEN_EVENTS:-../shared/bench/gen_events.py}"
EVENTS="${EVENTS:-200000}"
SENDERS="${SENDERS:-4}"
BATCH="${BATCH:-100}"
PROFILE="${PROFILE:-release}"                 # the server's build profile
LOADGEN_PROFILE="${LOADGEN_PROFILE:-release}" # the load generator's (dev: no optimised dev-dependencies to build)
mkdir -p bench-data
DEDUPE_WINDOW="${DEDUPE_WINDOW:-24h}"           # `off` measures serve without de-duplication
cat > bench-data/bench-serve.yaml <<YAML
settings:
  dedupe_window: "$DEDUPE_WINDOW"
mappings:
  - name: events
    trigger: 'type = "identify" or type = "track"'
    batch_size: 100000
    batch_max_age_seconds: 5
YAML
input="bench-data/mixed-$EVENTS.ndjson"
if [ ! -f "$input" ]; then
    python3 "$GEN" --count "$EVENTS" --seed 7 --mix mixed --out "$input.partial"
    mv "$input.partial" "$input"
fi
profile_dir() { if [ "$1" = dev ]; then echo "${CARGO_TARGET_DIR:-target}/debug"; else echo "${CARGO_TARGET_DIR:-target}/$1"; fi; }
cargo build --profile "$PROFILE" --quiet --bin s3actions
cargo build --profile "$LOADGEN_PROFILE" --quiet --example serve_load
dir=$(profile_dir "$PROFILE")
loadgen=$(profile_dir "$LOADGEN_PROFILE")/examples/serve_load
out=bench-data/serve-out
rm -rf "$out"
log=$(mktemp)
"$dir/s3actions" serve bench-data/bench-serve.yaml --listen 127.0.0.1:0 --out "$out" --json "$@" \
    > bench-data/serve-summary.json 2> "$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
addr=""
for _ in $(seq 1 200); do
    addr=$(grep -o 'listening on https\?://[^ ]*' "$log" | sed 's|.*://||' || true)
    [ -n "$addr" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.05
done
[ -n "$addr" ] || { echo "serve printed no address" >&2; cat "$log" >&2; exit 1; }
"$loadgen" --addr "$addr" --events "$input" --senders "$SENDERS" --batch "$BATCH" > bench-data/serve-load.json
kill -TERM "$server"
wait "$server"
trap 'rm -f "$log"' EXIT
python3 - bench-data/serve-load.json bench-data/serve-summary.json "$EVENTS" <<'PY'
import json, sys
load = json.load(open(sys.argv[1])); summary = json.load(open(sys.argv[2])); n = int(sys.argv[3])
assert summary["events_read"] == n, f"serve read {summary['events_read']} of {n} events"
print(f"{'events':<9} {'senders':<8} {'batch':<6} {'wall_s':>7} {'acked events/s':>15} {'p50_ms':>7} {'p99_ms':>7} {'serve_rss':>9}")
print(f"{load['events_acknowledged']:<9} {load['senders']:<8} {load['batch']:<6} {load['seconds']:7.2f} "
      f"{load['events_per_second']:15,.0f} {load['p50_ms']:7.2f} {load['p99_ms']:7.2f} {summary['peak_rss_mb']:7.1f}MB")
PY
