#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each (default 20), starting from
# the committed seeds (fuzz/seeds/<target>/) copied into a scratch corpus, so runs never
# change the tree, with the target's dictionary (fuzz/dicts/<target>.dict) if it has one.
# Installs cargo-fuzz if missing and needs the nightly toolchain. Fails, naming the target
# and the crash file (copied to fuzz/artifacts/<target>/), as soon as a target finds a
# crash, a panic, a timeout (10 s for one input) or an out-of-memory (2 GB).
#
#   scripts/fuzz.sh                 # every target, 20 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh fql liquid
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cd fuzz
# Release with debug assertions, AddressSanitizer: cargo-fuzz's defaults.
cargo +nightly fuzz build
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
scratch="$(mktemp -d "${TMPDIR:-/tmp}/s3actions-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    corpus="$scratch/corpus/$target"
    artifacts="$scratch/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "seeds/$target" ]; then
        cp seeds/"$target"/* "$corpus"/
    fi
    dict=()
    if [ -f "dicts/$target.dict" ]; then
        dict=(-dict="dicts/$target.dict")
    fi
    echo "fuzz: $target for ${seconds}s"
    log="$scratch/$target.log"
    if ! cargo +nightly fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
        grep -A 3 'panicked at' "$log" >&2 || true
        tail -n 30 "$log" >&2
        mkdir -p artifacts/"$target"
        cp "$artifacts"/* artifacts/"$target"/ 2>/dev/null || true
        found="$(ls artifacts/"$target"/ 2>/dev/null | head -n 1)"
        echo "fuzz: $target FAILED; reproduce with: cd fuzz && cargo +nightly fuzz run $target artifacts/$target/$found" >&2
        exit 1
    fi
    grep -E '^stat::number_of_executed_units|^#[0-9]+ *DONE' "$log" | tail -n 2 || true
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
