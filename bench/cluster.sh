#!/usr/bin/env bash
# bench/cluster.sh - what the Redis engine costs. In one run, the same SSE fan-out (SUBS
# subscribers) against:
#   local     one node, engine = local, store = memory (the reference)
#   redis1    one node, engine = redis (publish and deliver on the same node, through Redis)
#   redis2    two nodes on one Redis: the subscribers on B, the publisher posts to A
# each with two loads: "flat" (MSGS messages flat out, WINDOW in flight: throughput) and "rate"
# (RATE_MSGS messages at RATE/s: the same load everywhere, so CPU and latency compare directly).
# Prints deliveries/s, publish-to-delivery latency p50/p99, server CPU per delivery (the herald
# nodes, and redis-server separately) with ratios against local; then the Redis commands one
# published message costs (INFO commandstats before/after CMD_MSGS publishes on the two-node
# set-up). Writes bench/results/cluster-<stamp>.jsonl. See bench/README.md.
#
# Environment knobs (defaults in brackets):
#   SUBS [1000]  MSGS [1000]  WINDOW [1] publishes in flight  SIZE [64]
#   RATE [100] messages/s and RATE_MSGS [500] for the "rate" load  LOADS ["flat rate"]
#   CMD_MSGS [5000] publishes for the command count (window 16 over 4 connections, 1 subscriber)
#   RUN_TIMEOUT_S [90]  BUDGET_S [300]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SUBS=${SUBS:-1000}
MSGS=${MSGS:-1000}
WINDOW=${WINDOW:-1}
SIZE=${SIZE:-64}
RATE=${RATE:-100}
RATE_MSGS=${RATE_MSGS:-500}
LOADS=${LOADS:-flat rate}
CMD_MSGS=${CMD_MSGS:-5000}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-90}
BUDGET_S=${BUDGET_S:-300}

for tool in jq redis-server redis-cli; do
    command -v "$tool" >/dev/null || { log "$tool is needed (apt-get install jq redis-server)"; exit 1; }
done
make -s build/herald >&2
TMP=$(mktemp -d /tmp/herald-cluster-bench.XXXXXX)
mkdir -p bench/results
JSONL=bench/results/cluster-$(date +%Y%m%d-%H%M%S).jsonl
HZ=$(getconf CLK_TCK)
NODE_PIDS=()
REDIS_PID=""
cleanup() {
    local p
    for p in "${NODE_PIDS[@]}"; do stop_pid "$p"; done
    stop_pid "$REDIS_PID"
    stop_watchdog
    rm -rf "$TMP"
}
trap cleanup EXIT
start_watchdog

cpu_s() { # cpu_s PID: utime + stime in seconds (fields 14 and 15 of /proc/PID/stat)
    awk -v hz="$HZ" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' "/proc/$1/stat"
}

start_redis() { # sets REDIS_PORT, REDIS_PID
    REDIS_PORT=$(free_port)
    mkdir -p "$TMP/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/redis" \
        --daemonize no --logfile "$TMP/redis.log" &
    REDIS_PID=$!
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "redis-server did not start:"; cat "$TMP/redis.log" >&2; exit 1
}

stop_all() {
    local p
    for p in "${NODE_PIDS[@]}"; do stop_pid "$p"; done
    NODE_PIDS=()
    stop_pid "$REDIS_PID"
    REDIS_PID=""
}

start_node() { # start_node NAME FLAGS...: sets NODE_PORT, NODE_PID
    local name=$1
    shift
    NODE_PORT=$(free_port)
    ./build/herald serve --http "127.0.0.1:$NODE_PORT" --mqtt "" --data_dir "$TMP/$name" --max-connections 20000 \
        --log_level warn "$@" >"$TMP/$name.log" 2>&1 &
    NODE_PID=$!
    NODE_PIDS+=("$NODE_PID")
    wait_listen "$NODE_PORT" "$NODE_PID" || { log "herald $name did not start:"; cat "$TMP/$name.log" >&2; exit 1; }
}

cmdstats() { # cmdstats: "command calls" lines from INFO commandstats
    redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
        sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' | sort
}

cmd_delta_json() { # cmd_delta_json BEFORE AFTER: {"cmd": calls, ...} of the difference (nonzero only)
    join -a 2 -e 0 -o 0,1.2,2.2 "$1" "$2" | awk '$1 != "info" && $3 - $2 > 0 { print $1, $3 - $2 }' |
        jq -R -s -c 'split("\n") | map(select(length > 0) | split(" ")) | map({(.[0]): (.[1] | tonumber)}) | add // {}'
}

# bench_run NAME LOAD SUB_URL PUB_URL SUB_PID OTHER_PIDS...: one fan-out; appends a JSON line
# with the generator's figures (server_cpu_s = the subscribers' node over the publishing phase)
# plus other_cpu_s (the other herald nodes) and redis_cpu_s over the whole run, and the Redis
# commands.
bench_run() {
    local name=$1 load=$2 sub_url=$3 pub_url=$4 sub_pid=$5
    shift 5
    local others=("$@") p before_o=0 after_o=0 before_r=0 after_r=0 rc=0 line msgs=$MSGS rate=0
    [ "$load" = rate ] && msgs=$RATE_MSGS rate=$RATE
    for p in "${others[@]}"; do before_o=$(awk -v a="$before_o" -v b="$(cpu_s "$p")" 'BEGIN { print a + b }'); done
    [ -n "$REDIS_PID" ] && before_r=$(cpu_s "$REDIS_PID") && cmdstats >"$TMP/cmd.before"
    log "$name/$load: $SUBS SSE subscribers on $sub_url, $msgs messages (rate ${rate}/s, 0 = flat out) to $pub_url ..."
    line=$(timeout $((RUN_TIMEOUT_S + 30)) ./build/herald bench --url "$sub_url" --pub-url "$pub_url" \
        --channel "cl$$-$name-$load" --subs "$SUBS" --messages "$msgs" --rate "$rate" --window "$WINDOW" --size "$SIZE" \
        --server-pid "$sub_pid" --timeout-s "$RUN_TIMEOUT_S" --json --quiet) || rc=$?
    [ $rc -eq 0 ] || log "$name/$load: load generator exit $rc"
    for p in "${others[@]}"; do after_o=$(awk -v a="$after_o" -v b="$(cpu_s "$p")" 'BEGIN { print a + b }'); done
    local cmds='{}'
    if [ -n "$REDIS_PID" ]; then
        after_r=$(cpu_s "$REDIS_PID")
        cmdstats >"$TMP/cmd.after"
        cmds=$(cmd_delta_json "$TMP/cmd.before" "$TMP/cmd.after")
    fi
    [ -n "$line" ] && echo "$line" | jq -c --arg s "$name" --argjson o "$(awk -v a="$before_o" -v b="$after_o" 'BEGIN { print b - a }')" \
        --argjson r "$(awk -v a="$before_r" -v b="$after_r" 'BEGIN { print b - a }')" --argjson c "$cmds" \
        --arg l "$load" '. + {server: $s, name: $l, other_cpu_s: $o, redis_cpu_s: $r, redis_cmds: $c}' >>"$JSONL"
    return 0
}

# 1. one node, local engine, memory store
start_node local --engine local --store memory
for load in $LOADS; do bench_run local "$load" "http://127.0.0.1:$NODE_PORT" "http://127.0.0.1:$NODE_PORT" "$NODE_PID"; done
stop_all

# 2. one node on Redis
start_redis
start_node redis1 --engine redis --redis "127.0.0.1:$REDIS_PORT"
for load in $LOADS; do bench_run redis1 "$load" "http://127.0.0.1:$NODE_PORT" "http://127.0.0.1:$NODE_PORT" "$NODE_PID"; done
stop_all

# 3. two nodes on one Redis: publish on A, subscribers on B; then the command count
start_redis
start_node A --engine redis --redis "127.0.0.1:$REDIS_PORT"
A_PORT=$NODE_PORT A_PID=$NODE_PID
start_node B --engine redis --redis "127.0.0.1:$REDIS_PORT"
B_PORT=$NODE_PORT B_PID=$NODE_PID
for load in $LOADS; do bench_run redis2 "$load" "http://127.0.0.1:$B_PORT" "http://127.0.0.1:$A_PORT" "$B_PID" "$A_PID"; done
log "commands: $CMD_MSGS publishes on A (window 16, 4 connections), 1 subscriber on B ..."
before_r=$(cpu_s "$REDIS_PID")
cmdstats >"$TMP/cmd.before"
rc=0
line=$(timeout $((RUN_TIMEOUT_S + 30)) ./build/herald bench --url "http://127.0.0.1:$B_PORT" \
    --pub-url "http://127.0.0.1:$A_PORT" --channel "cl$$-cmds" --subs 1 --messages "$CMD_MSGS" --rate 0 \
    --window 16 --pub-conns 4 --size "$SIZE" --timeout-s "$RUN_TIMEOUT_S" --json --quiet) || rc=$?
[ $rc -eq 0 ] || log "commands: load generator exit $rc"
after_r=$(cpu_s "$REDIS_PID")
cmdstats >"$TMP/cmd.after"
cmds=$(cmd_delta_json "$TMP/cmd.before" "$TMP/cmd.after")
[ -n "$line" ] && echo "$line" | jq -c --argjson c "$cmds" --argjson r "$(awk -v a="$before_r" -v b="$after_r" 'BEGIN { print b - a }')" \
    '. + {server: "redis2", name: "commands", redis_cpu_s: $r, redis_cmds: $c}' >>"$JSONL"
stop_all

# ---- the table (INFO, our own reading of commandstats, is left out of the command counts)
per() { [ -z "$1" ] || [ -z "$2" ] && { echo ""; return; }; awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a * 1000000 / b }'; }
echo
printf '%-6s %-8s %10s %8s %8s %11s %12s %8s %5s %8s %8s %8s %8s\n' load setup deliv_per_s p50_ms p99_ms \
    node_us_dlv redis_us_dlv missing dups r_dlv_s r_p50 r_p99 r_cpu
for load in $LOADS; do
    b_dps=$(get local "$load" deliveries_per_s)
    b_p50=$(get local "$load" lat_p50_ms)
    b_p99=$(get local "$load" lat_p99_ms)
    b_cpu=""
    for s in local redis1 redis2; do
        d=$(get "$s" "$load" deliveries)
        [ -n "$d" ] || continue
        node_cpu=$(awk -v a="$(get "$s" "$load" server_cpu_s)" -v b="$(get "$s" "$load" other_cpu_s)" 'BEGIN { print a + b }')
        ncpu=$(per "$node_cpu" "$d")
        rcpu=$(per "$(get "$s" "$load" redis_cpu_s)" "$d")
        [ "$s" = local ] && b_cpu=$ncpu
        dps=$(get "$s" "$load" deliveries_per_s)
        printf '%-6s %-8s %10s %8s %8s %11s %12s %8s %5s %8s %8s %8s %8s\n' "$load" "$s" "$(fmt "$dps")" \
            "$(fmt "$(get "$s" "$load" lat_p50_ms)")" "$(fmt "$(get "$s" "$load" lat_p99_ms)")" "${ncpu:--}" \
            "$([ "$s" = local ] && echo - || echo "${rcpu:--}")" "$(get "$s" "$load" missing)" \
            "$(get "$s" "$load" duplicates)" "$(ratio "$dps" "$b_dps")" "$(ratio "$(get "$s" "$load" lat_p50_ms)" "$b_p50")" \
            "$(ratio "$(get "$s" "$load" lat_p99_ms)" "$b_p99")" "$(ratio "$ncpu" "$b_cpu")"
    done
done
echo "$SUBS SSE subscribers, $SIZE-byte messages; flat: $MSGS messages flat out (window $WINDOW); rate: $RATE_MSGS at $RATE/s."
echo "setups: local = 1 node, engine local, store memory; redis1 = 1 node on Redis; redis2 = publish on A, subscribers on B."
echo "node_us_dlv: CPU of every herald node per delivery (redis2: B over the publishing phase + A over the run);"
echo "redis_us_dlv: redis-server's CPU per delivery; r_*: ratio to local in the same load (deliveries/s, p50, p99, node CPU)."
echo
n=$(jq -r 'select(.name == "commands") | .pub_ok // empty' "$JSONL" | head -n1)
echo "Redis commands per published message (2 nodes, $CMD_MSGS publishes on A; ${n:-?} answered 200):"
if [ -n "$n" ] && [ "$n" -gt 0 ]; then
    jq -r --argjson n "$n" 'select(.name == "commands") | .redis_cmds | to_entries | sort_by(-.value) |
        (map("  \(.key | .[0:24] | . + " " * (24 - length)) \(.value / $n * 10000 | round / 10000)") | .[]),
        "  total                    \((map(.value) | add) / $n * 10000 | round / 10000)"' "$JSONL"
    rcpu=$(jq -r 'select(.name == "commands") | .redis_cpu_s' "$JSONL" | head -n1)
    echo "  redis-server CPU per publish: $(per "$rcpu" "$n") us"
fi
echo "(commands run inside the publish script are counted too; the small fractions are the nodes'"
echo " presence reports, once a second per node, and the channel's first load on each node.)"
echo "raw results: $JSONL"
