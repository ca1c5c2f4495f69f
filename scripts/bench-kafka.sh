#!/usr/bin/env bash
# Kafka benchmark: events/s of `consume` (one instance, then two in one group) against the
# local tansu broker, next to `replay` of the same events from a file. Generates mixed
# events with gen_events.py, produces them with examples/kafka_produce.rs into a fresh
# 4-partition topic (Debian's kcat cannot talk to tansu), then
# times `consume --stop-at-end --out` (which includes the group join and the final
# commits). On 2 cores the broker shares the machine with the consumer: compare with the
# replay line, which has no broker.
#
#   ./scripts/bench-kafka.sh            # 200k events
#   ./scripts/bench-kafka.sh 50000
set -euo pipefail
cd "$(dirname "$0")/.."
GEN="${GEN_EVENTS:-../shared/bench/gen_events.py}"
N="${1:-200000}"
. scripts/kafka.sh
trap kafka_stop EXIT
kafka_start
mkdir -p bench-data
cat > bench-data/bench-kafka.yaml <<'YAML'
mappings:
  - name: events
    trigger: 'type = "identify" or type = "track"'
    batch_size: 100000
YAML
input="bench-data/mixed-$N.ndjson"
if [ ! -f "$input" ]; then
    python3 "$GEN" --count "$N" --seed 7 --mix mixed --out "$input.partial"
    mv "$input.partial" "$input"
fi
cargo build --release --quiet --bin s3actions --example kafka_produce
bin=target/release/s3actions
topic="bench-$(date +%s)"
# Round robin over 4 partitions, each line one message.
target/release/examples/kafka_produce "$S3ACTIONS_TEST_KAFKA" "$topic" 4 "$input"
printf "%-22s %8s %12s\n" run wall_s events/s
# The timed commands' own output goes to /dev/null; the figures go to fd 3 (stdout).
exec 3>&1
run() {
    local label=$1; shift
    local start end
    start=$(date +%s%N)
    "$@"
    end=$(date +%s%N)
    python3 -c "print(f'{\"$label\":<22} {($end - $start) / 1e9:8.2f} {$N / (($end - $start) / 1e9):12,.0f}')" >&3
}
rm -rf bench-data/kout-replay
run "replay (file)" $bin replay bench-data/bench-kafka.yaml "$input" --out bench-data/kout-replay --json >/dev/null
rm -rf bench-data/kout-1
run "consume, 1 instance" $bin consume bench-data/bench-kafka.yaml --brokers "$S3ACTIONS_TEST_KAFKA" \
    --topic "$topic" --group "bench-1-$topic" --stop-at-end --out bench-data/kout-1 --json >/dev/null
rm -rf bench-data/kout-2
two() {
    $bin consume bench-data/bench-kafka.yaml --brokers "$S3ACTIONS_TEST_KAFKA" --topic "$topic" \
        --group "bench-2-$topic" --stop-at-end --out bench-data/kout-2 --json >/dev/null &
    local a=$!
    $bin consume bench-data/bench-kafka.yaml --brokers "$S3ACTIONS_TEST_KAFKA" --topic "$topic" \
        --group "bench-2-$topic" --stop-at-end --out bench-data/kout-2 --json >/dev/null
    wait $a
}
run "consume, 2 instances" two
rm -rf bench-data/kout-replay bench-data/kout-1 bench-data/kout-2
