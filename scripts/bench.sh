#!/usr/bin/env bash
# End-to-end benchmark: generates realistic events with gen_events.py (deterministic), then
# times `replay` of 100k and 1M mixed events with Segment's default columns and trigger
# into a local directory, with 1 and 2 worker threads. Prints wall time, events/s, MB/s and
# peak RSS. The input is read once beforehand so it is in the page cache.
#
#   ./scripts/bench.sh            # 100k and 1M
#   ./scripts/bench.sh 100000     # only 100k
#   ./scripts/bench.sh formats    # 100k events to each format, with and without compression
set -euo pipefail
cd "$(dirname "$0")/.."
GEN="${GEN_EVENTS:-../shared/bench/gen_events.py}"
mkdir -p bench-data

# Generates bench-data/mixed-N.ndjson once (beside and renamed, so an interrupted run never
# leaves a short file behind) and reads it into the page cache.
input_for() {
    local n=$1 input="bench-data/mixed-$1.ndjson"
    if [ ! -f "$input" ]; then
        python3 "$GEN" --count "$n" --seed 7 --mix mixed --out "$input.partial"
        mv "$input.partial" "$input"
    fi
    cat "$input" > /dev/null
    echo "$input"
}

if [ "${1:-}" = formats ]; then
    n=100000
    input=$(input_for "$n")
    cargo build --release --quiet
    printf "%-24s %8s %8s %12s %10s\n" format wall_s vs_csv output_MB peak_rss
    csv_wall=
    for case in "csv" "csv gzip" "csv zstd" "ndjson" "ndjson gzip" "ndjson zstd" \
        "raw gzip" "parquet" "parquet zstd"; do
        set -- $case
        format=$1 compression=${2:-none} raw=false
        if [ "$format" = raw ]; then format=ndjson raw=true; fi
        cat > bench-data/format.yaml <<YAML
mappings:
  - name: events
    trigger: 'type = "identify" or type = "track"'
    batch_size: 100000
    format: $format
    raw: $raw
    compression: $compression
YAML
        out="bench-data/out-format"
        rm -rf "$out"
        start=$(date +%s%N)
        summary=$(target/release/s3actions replay bench-data/format.yaml "$input" --out "$out" --threads 2 --json)
        end=$(date +%s%N)
        size=$(du -sb "$out" | cut -f1)
        rm -rf "$out"
        wall=$(python3 -c "print(($end - $start) / 1e9)")
        csv_wall=${csv_wall:-$wall}
        python3 - "$summary" "$case" "$wall" "$csv_wall" "$size" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); case = sys.argv[2]; wall, base, size = map(float, sys.argv[3:])
print(f"{case:<24} {wall:8.3f} {wall / base:7.2f}x {size / 1e6:12.1f} {s['peak_rss_mb']:8.1f}MB")
PY
    done
    exit 0
fi

COUNTS=("${@:-100000 1000000}")
cat > bench-data/bench.yaml <<'YAML'
mappings:
  - name: events
    trigger: 'type = "identify" or type = "track"'
    batch_size: 100000
YAML
cargo build --release --quiet
printf "%-9s %-7s %8s %12s %9s %10s\n" events threads wall_s events/s MB/s peak_rss
for n in ${COUNTS[@]}; do
    input=$(input_for "$n")
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
