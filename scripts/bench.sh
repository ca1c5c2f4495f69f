#!/usr/bin/env bash
# End-to-end benchmark: generates realistic events with gen_events.py (deterministic), then
# times `replay` of 100k and 1M mixed events with Segment's default columns and trigger
# into a local directory, with 1 and 2 worker threads. Prints wall time, events/s, MB/s and
# peak RSS. The input is read once beforehand so it is in the page cache.
#
#   ./scripts/bench.sh            # 100k and 1M
#   ./scripts/bench.sh 100000     # only 100k
set -euo pipefail
cd "$(dirname "$0")/.."
GEN="${GEN_EVENTS:-../shared/bench/gen_events.py}"
COUNTS=("${@:-100000 1000000}")
mkdir -p bench-data
cat > bench-data/bench.yaml <<'YAML'
mappings:
  - name: events
    trigger: 'type = "identify" or type = "track"'
    batch_size: 100000
YAML
cargo build --release --quiet
printf "%-9s %-7s %8s %12s %9s %10s\n" events threads wall_s events/s MB/s peak_rss
for n in ${COUNTS[@]}; do
    input="bench-data/mixed-$n.ndjson"
    if [ ! -f "$input" ]; then
        # Generate beside and rename, so an interrupted run never leaves a short file behind.
        python3 "$GEN" --count "$n" --seed 7 --mix mixed --out "$input.partial"
        mv "$input.partial" "$input"
    fi
    cat "$input" > /dev/null
    bytes=$(stat -c %s "$input")
    for threads in 1 2; do
        out="bench-data/out-$n-$threads"
        rm -rf "$out"
        start=$(date +%s%N)
        summary=$(target/release/s3actions replay bench-data/bench.yaml "$input" --out "$out" --threads "$threads" --json)
        end=$(date +%s%N)
        rm -rf "$out"
        python3 - "$summary" "$start" "$end" "$n" "$threads" "$bytes" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); start, end, n, threads, size = map(int, sys.argv[2:])
wall = (end - start) / 1e9
print(f"{n:<9} {threads:<7} {wall:8.3f} {n / wall:12,.0f} {size / 1e6 / wall:9.1f} {s['peak_rss_mb']:8.1f}MB")
PY
    done
done
