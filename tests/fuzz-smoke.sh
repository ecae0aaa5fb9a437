#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 20) from its seed corpus.
# Prints TAP: "ok - fuzz_x" when no finding, "not ok - fuzz_x" with the crash output otherwise.
set -u
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
for bin in build/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    corpus=fuzz/corpus/${name#fuzz_}
    work=$(mktemp -d)
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null
    dict=()
    [ -f "fuzz/dict/${name#fuzz_}.dict" ] && dict=(-dict="fuzz/dict/${name#fuzz_}.dict")
    if out=$("$bin" "${dict[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$work/" "$work" 2>&1); then
        echo "ok - $name ($(grep -o 'stat::number_of_executed_units: [0-9]*' <<<"$out" | awk '{print $2}') runs in ${secs}s)"
    else
        echo "not ok - $name"
        grep -E 'ERROR|SUMMARY|LLVMFuzzerTestOneInput|^    #[0-9] ' <<<"$out" | head -20 | sed 's/^/#   /'
        # keep the input that failed, and show it, so the finding can be reproduced
        mkdir -p build/fuzz-findings
        for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
            [ -f "$a" ] || continue
            cp "$a" "build/fuzz-findings/$name-$(basename "$a")"
            echo "#   input ($(basename "$a")), as octal-escaped bytes:"
            od -An -c "$a" | head -20 | sed 's/^/#     /'
        done
    fi
    rm -rf "$work"
done
