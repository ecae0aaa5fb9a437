#!/usr/bin/env bash
# bench/store.sh - what durability costs: the same publish load against herald with
# store = memory, store = lmdb + durability = interval, and store = lmdb + durability = sync,
# in one run. Prints publishes/s, publish-to-delivery latency, server CPU per published message,
# and the store's commits and fsyncs (from herald's shutdown log line), with ratios against the
# memory store. See bench/README.md.
#
# Environment knobs (defaults in brackets):
#   MSGS [20000]  SUBS [10]  WINDOW [32] publishes in flight  PUB_CONNS [8]  SIZE [64]
#   POLICIES ["memory interval sync"]  RUN_TIMEOUT_S [90]  BUDGET_S [400]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

MSGS=${MSGS:-20000}
SUBS=${SUBS:-10}
WINDOW=${WINDOW:-32}
PUB_CONNS=${PUB_CONNS:-8}
SIZE=${SIZE:-64}
POLICIES=${POLICIES:-memory interval sync}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-90}
BUDGET_S=${BUDGET_S:-400}

command -v jq >/dev/null || { log "jq is needed (apt-get install jq)"; exit 1; }
make -s build/herald >&2
TMP=$(mktemp -d /tmp/herald-store-bench.XXXXXX)
mkdir -p bench/results
JSONL=bench/results/store-$(date +%Y%m%d-%H%M%S).jsonl
HERALD_PID=""
cleanup() {
    stop_pid "$HERALD_PID"
    stop_watchdog
    rm -rf "$TMP"
}
trap cleanup EXIT
start_watchdog

for policy in $POLICIES; do
    port=$(free_port)
    case $policy in
    memory) flags=(--store memory) ;;
    *) flags=(--store lmdb --durability "$policy") ;;
    esac
    rm -rf "$TMP/data"
    ./build/herald serve --http "127.0.0.1:$port" --mqtt "" --data_dir "$TMP/data" --log_level info \
        "${flags[@]}" >"$TMP/$policy.log" 2>&1 &
    HERALD_PID=$!
    wait_listen "$port" "$HERALD_PID" || { log "herald ($policy) did not start:"; cat "$TMP/$policy.log" >&2; exit 1; }
    log "$policy: $MSGS publishes, window $WINDOW over $PUB_CONNS connections, $SUBS SSE subscribers ..."
    rc=0
    line=$(timeout $((RUN_TIMEOUT_S + 30)) ./build/herald bench --url "http://127.0.0.1:$port" --channel "st$$" \
        --subs "$SUBS" --messages "$MSGS" --rate 0 --window "$WINDOW" --pub-conns "$PUB_CONNS" --size "$SIZE" \
        --server-pid "$HERALD_PID" --timeout-s "$RUN_TIMEOUT_S" --json --quiet) || rc=$?
    [ $rc -eq 0 ] || log "$policy: load generator exit $rc"
    stop_pid "$HERALD_PID"
    HERALD_PID=""
    commits=$(sed -n 's/.*store: closed (\([0-9]*\) commits, \([0-9]*\) fsyncs).*/\1/p' "$TMP/$policy.log")
    fsyncs=$(sed -n 's/.*store: closed (\([0-9]*\) commits, \([0-9]*\) fsyncs).*/\2/p' "$TMP/$policy.log")
    [ -n "$line" ] && echo "$line" | jq -c --arg s "$policy" --arg c "${commits:-0}" --arg f "${fsyncs:-0}" \
        '. + {server: $s, name: "pub", commits: ($c | tonumber), fsyncs: ($f | tonumber)}' >>"$JSONL"
done

printf '%-10s %12s %10s %10s %14s %9s %9s %8s %8s\n' policy pub_per_s p50_ms p99_ms cpu_us_per_pub commits fsyncs missing ratio
base=$(get memory pub pub_per_s)
for policy in $POLICIES; do
    pps=$(get "$policy" pub pub_per_s)
    cpu_total=$(get "$policy" pub server_cpu_s)
    cpu_pub=""
    [ -n "$cpu_total" ] && cpu_pub=$(awk -v c="$cpu_total" -v m="$MSGS" 'BEGIN { printf "%.1f", c * 1000000 / m }')
    printf '%-10s %12s %10s %10s %14s %9s %9s %8s %8s\n' "$policy" "$(fmt "$pps")" \
        "$(fmt "$(get "$policy" pub lat_p50_ms)")" "$(fmt "$(get "$policy" pub lat_p99_ms)")" "${cpu_pub:--}" \
        "$(get "$policy" pub commits)" "$(get "$policy" pub fsyncs)" "$(get "$policy" pub missing)" "$(ratio "$pps" "$base")"
done
echo "ratio = publishes/s against the memory store in the same run; latency is publish to delivery;"
echo "commits/fsyncs: the store's own counts (memory: none). raw results: $JSONL"
