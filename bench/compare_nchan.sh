#!/usr/bin/env bash
# bench/compare_nchan.sh - run the same load scenarios against herald and nginx+nchan in one
# run and print both figures and herald/nchan ratios. See bench/README.md.
#
# Environment knobs (defaults in brackets):
#   HERALD_SKIP=1 / NCHAN_SKIP=1   leave one server out [both run]
#   SUBS_BIG [10000]  SUBS_SMALL [1000]  IDLE_CONNS [10000]
#   MSGS_RATE [200] RATE [5]        fixed-rate SSE fan-out to SUBS_BIG
#   MSGS_FLAT [200]                 flat-out SSE fan-out to SUBS_BIG (window 1)
#   MSGS_SMALL [1000]               flat-out SSE fan-out to SUBS_SMALL
#   MSGS_LP [200]                   flat-out long-poll fan-out to SUBS_SMALL
#   MSGS_WS [200]                   flat-out WebSocket fan-out to SUBS_BIG (ws, wsdeflate)
#   DEFLATE_SIZE [512]  DEFLATE_PAYLOAD [json]   wsdeflate payload size and padding (json|x)
#   SIZE [64]  RUN_TIMEOUT_S [90]  BUDGET_S [570]
#   SCENARIOS ["idle wsidle rate flat ws wsdeflate small lp"]
# The idle scenarios (idle, wsidle) measure RSS per connection, which only means something on
# a fresh server: before each of them both servers are restarted, unless nothing ran on them yet.
# Every process it starts is stopped by PID on exit; the whole script is bounded by BUDGET_S.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULTS="$ROOT/bench/results"
SUBS_BIG=${SUBS_BIG:-10000}
SUBS_SMALL=${SUBS_SMALL:-1000}
IDLE_CONNS=${IDLE_CONNS:-10000}
MSGS_RATE=${MSGS_RATE:-200}
RATE=${RATE:-5}
MSGS_FLAT=${MSGS_FLAT:-200}
MSGS_SMALL=${MSGS_SMALL:-1000}
MSGS_LP=${MSGS_LP:-200}
MSGS_WS=${MSGS_WS:-200}
DEFLATE_SIZE=${DEFLATE_SIZE:-512}
DEFLATE_PAYLOAD=${DEFLATE_PAYLOAD:-json}
SIZE=${SIZE:-64}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-90}
BUDGET_S=${BUDGET_S:-570}
SCENARIOS=${SCENARIOS:-"idle wsidle rate flat ws wsdeflate small lp"}
HERALD_SKIP=${HERALD_SKIP:-0}
NCHAN_SKIP=${NCHAN_SKIP:-0}
NCHAN_SO=${NCHAN_SO:-/usr/share/nginx/modules/ngx_nchan_module.so}

TMP=$(mktemp -d /tmp/herald-bench.XXXXXX)
HERALD_PID=""
NGINX_PID=""
WATCHDOG_PID=""
START=$(date +%s)

log() { echo "[bench] $*" >&2; }

stop_pid() { # stop_pid PID: TERM, wait up to 5 s, then KILL; only the PID we started
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    stop_pid "$HERALD_PID"
    stop_pid "$NGINX_PID"
    [ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null || true
    [ -n "$WATCHDOG_PID" ] && wait "$WATCHDOG_PID" 2>/dev/null || true
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Hard bound on the whole script: the watchdog TERMs us, and the EXIT trap stops the servers.
(
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$BUDGET_S" & sp=$!
    wait "$sp"
    echo "[bench] time budget of ${BUDGET_S}s exhausted, stopping" >&2
    kill -TERM $$
) &
WATCHDOG_PID=$!

command -v jq >/dev/null || { log "jq is required (apt-get install jq)"; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000))   # below the ephemeral range (32768+)
        if [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ]; then echo "$p"; return 0; fi
    done
    return 1
}

wait_http() { # wait_http PORT PID: up to 10 s for the port to answer while PID lives
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || return 1
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
        sleep 0.1
    done
    return 1
}

# ---- build ----
LOADGEN=()
if [ "$HERALD_SKIP" != 1 ]; then
    log "building herald (make build/herald)"
    make -C "$ROOT" --no-print-directory build/herald >&2
    LOADGEN=("$ROOT/build/herald" bench)
else
    # nchan-only mode: the load generator alone, with a throwaway main(), plus the pure WebSocket
    # codec it uses and what that needs (byte blocks, error texts, SHA-1 from libcrypto; zlib).
    log "HERALD_SKIP=1: building a standalone load generator"
    printf '#include "%s/bench/loadgen.h"\nint main(int c, char **v) { return bench_main(c - 1, v + 1); }\n' \
        "$ROOT" >"$TMP/bmain.c"
    cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -O2 \
        -o "$TMP/loadgen" "$ROOT/bench/loadgen.c" "$ROOT/src/transport/ws_codec.c" "$ROOT/src/transport/mqtt_codec.c" "$ROOT/src/core/bytes.c" \
        "$ROOT/src/core/err.c" "$TMP/bmain.c" -lcrypto -lz
    LOADGEN=("$TMP/loadgen")
fi

# ---- servers ----
HERALD_PORT=""
NCHAN_PORT=""
NCHAN_WORKER=""

start_herald() {
    HERALD_PORT=$(free_port)
    "$ROOT/build/herald" serve --http "127.0.0.1:$HERALD_PORT" --max-connections 20000 --log-level warn \
        >"$TMP/herald.log" 2>&1 &
    HERALD_PID=$!
    wait_http "$HERALD_PORT" "$HERALD_PID" || { log "herald did not start:"; cat "$TMP/herald.log" >&2; exit 1; }
    log "herald pid $HERALD_PID on 127.0.0.1:$HERALD_PORT"
}

start_nchan() {
    [ -f "$NCHAN_SO" ] || { log "nchan module not found at $NCHAN_SO (apt-get install libnginx-mod-nchan)"; exit 1; }
    NCHAN_PORT=$(free_port)
    rm -rf "$TMP/nginx"
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<NGINX_CONF
# generated by bench/compare_nchan.sh; one worker to match herald's single thread
load_module $NCHAN_SO;
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 19500; use epoll; }
http {
    access_log $TMP/nginx/access.log combined buffer=64k flush=1s;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    # same history depth as herald's default (history_messages = 1000)
    nchan_message_buffer_length 1000;
    nchan_message_timeout 1h;
    server {
        listen 127.0.0.1:$NCHAN_PORT backlog=4096;
        # Channels whose name ends in "deflate" (the wsdeflate scenario's) also store a deflated
        # copy of each message, made once when it is published, for the websocket subscribers
        # that agreed on permessage-deflate. nchan reads this directive in the publisher location.
        location ~ ^/pub/(.+deflate)\$ {
            nchan_publisher;
            nchan_channel_id \$1;
            nchan_deflate_message_for_websocket on;
        }
        location ~ ^/pub/(.+)\$ { nchan_publisher; nchan_channel_id \$1; }
        location ~ ^/sub/(.+)\$ {
            nchan_subscriber websocket eventsource longpoll;
            nchan_channel_id \$1;
            nchan_subscriber_first_message oldest;
        }
        location / { return 200 "ok\n"; }
    }
}
NGINX_CONF
    nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx/" >"$TMP/nginx/stdout.log" 2>&1 &
    NGINX_PID=$!
    wait_http "$NCHAN_PORT" "$NGINX_PID" ||
        { log "nginx did not start:"; cat "$TMP/nginx/error.log" "$TMP/nginx/stdout.log" >&2; exit 1; }
    NCHAN_WORKER=$(pgrep -P "$NGINX_PID" | head -n1)
    [ -n "$NCHAN_WORKER" ] || { log "no nginx worker process"; exit 1; }
    log "nginx+nchan master $NGINX_PID worker $NCHAN_WORKER on 127.0.0.1:$NCHAN_PORT"
}

[ "$HERALD_SKIP" != 1 ] && start_herald
[ "$NCHAN_SKIP" != 1 ] && start_nchan
FRESH=1 # nothing has run on the servers yet

# fresh_servers: restarts both servers (on new ports) unless nothing ran on them yet, so that an
# idle scenario's RSS growth is not hidden by memory the allocator kept from earlier runs.
fresh_servers() {
    [ "$FRESH" = 1 ] && return 0
    log "restarting the servers for a fresh RSS baseline"
    if [ "$HERALD_SKIP" != 1 ]; then stop_pid "$HERALD_PID"; HERALD_PID=""; start_herald; fi
    if [ "$NCHAN_SKIP" != 1 ]; then stop_pid "$NGINX_PID"; NGINX_PID=""; start_nchan; fi
    FRESH=1
}

mkdir -p "$RESULTS"
STAMP=$(date +%Y%m%d-%H%M%S)
JSONL="$RESULTS/$STAMP.jsonl"
TABLE="$RESULTS/$STAMP.txt"
: >"$JSONL"

# run_one SERVER SCENARIO ARGS... : one load-generator run, its JSON line tagged and appended
run_one() {
    local server=$1 scen=$2; shift 2
    local port pid style
    if [ "$server" = herald ]; then port=$HERALD_PORT; pid=$HERALD_PID; style=herald
    else port=$NCHAN_PORT; pid=$NCHAN_WORKER; style=nchan; fi
    local elapsed=$(( $(date +%s) - START ))
    if [ $((elapsed + RUN_TIMEOUT_S)) -gt "$BUDGET_S" ]; then
        log "skipping $scen on $server: not enough time left in the budget"
        return 0
    fi
    kill -0 "$pid" 2>/dev/null || { log "$server (pid $pid) is not running; skipping $scen"; return 0; }
    sleep 1 # let the server finish closing the previous run's connections
    log "$scen on $server ..."
    local line rc=0
    line=$(timeout $((RUN_TIMEOUT_S + 30)) "${LOADGEN[@]}" --url "http://127.0.0.1:$port" \
        --channel "b$$-$scen" --pub-path-style "$style" --server-pid "$pid" \
        --timeout-s "$RUN_TIMEOUT_S" --size "$SIZE" --json --quiet "$@") || rc=$?
    if [ -z "$line" ]; then
        log "$scen on $server produced no result (exit $rc)"
        return 0
    fi
    [ $rc -eq 0 ] || log "$scen on $server: exit $rc (incomplete run; see missing/timed_out)"
    echo "$line" | jq -c --arg s "$server" --arg n "$scen" '. + {server: $s, name: $n}
        + (if (.ws_messages // 0) > 0 then {wire_bytes_per_msg: (.ws_wire_bytes / .ws_messages)} else {} end)' \
        >>"$JSONL"
}

servers=()
[ "$HERALD_SKIP" != 1 ] && servers+=(herald)
[ "$NCHAN_SKIP" != 1 ] && servers+=(nchan)

for scen in $SCENARIOS; do
    case $scen in idle | wsidle) fresh_servers ;; esac
    for s in "${servers[@]}"; do
        case $scen in
        idle)   run_one "$s" idle --idle-conns "$IDLE_CONNS" ;;
        wsidle) run_one "$s" wsidle --mode ws --idle-conns "$IDLE_CONNS" ;;
        rate)   run_one "$s" rate --subs "$SUBS_BIG" --messages "$MSGS_RATE" --rate "$RATE" ;;
        flat)   run_one "$s" flat --subs "$SUBS_BIG" --messages "$MSGS_FLAT" --rate 0 --window 1 ;;
        ws)     run_one "$s" ws --mode ws --subs "$SUBS_BIG" --messages "$MSGS_WS" --rate 0 --window 1 ;;
        wsdeflate)
            run_one "$s" wsdeflate --mode ws --deflate --subs "$SUBS_BIG" --messages "$MSGS_WS" --rate 0 \
                --window 1 --size "$DEFLATE_SIZE" --payload "$DEFLATE_PAYLOAD" ;;
        small)  run_one "$s" small --subs "$SUBS_SMALL" --messages "$MSGS_SMALL" --rate 0 --window 1 ;;
        lp)     run_one "$s" lp --mode longpoll --subs "$SUBS_SMALL" --messages "$MSGS_LP" --rate 0 --window 1 ;;
        *)      log "unknown scenario $scen" ;;
        esac
    done
    FRESH=0
done

# ---- report ----
get() { # get SERVER SCENARIO FIELD
    jq -r --arg s "$1" --arg n "$2" --arg f "$3" \
        'select(.server == $s and .name == $n) | .[$f] // empty' "$JSONL" | head -n1
}
fmt() { [ -z "$1" ] && { echo "-"; return; }; awk -v v="$1" 'BEGIN { if (v < 0) print "n/a"; else if (v == int(v)) printf "%d", v; else if (v >= 1000) printf "%.0f", v; else if (v >= 10) printf "%.1f", v; else printf "%.3f", v }'; }
ratio() { [ -z "$1" ] || [ -z "$2" ] && { echo "-"; return; }; awk -v a="$1" -v b="$2" 'BEGIN { if (a < 0 || b <= 0) print "-"; else printf "%.2f", a / b }'; }

describe() {
    case $1 in
    idle)  echo "idle: $IDLE_CONNS idle SSE connections on one channel" ;;
    wsidle) echo "wsidle: $IDLE_CONNS idle WebSocket connections on one channel" ;;
    ws)    echo "ws: WebSocket fan-out, $SUBS_BIG subscribers, $MSGS_WS msgs flat out (window 1)" ;;
    wsdeflate)
        echo "wsdeflate: as ws, permessage-deflate offered, $DEFLATE_SIZE-byte $DEFLATE_PAYLOAD payloads" ;;
    rate)  echo "rate: SSE fan-out, $SUBS_BIG subscribers, $MSGS_RATE msgs at $RATE msg/s" ;;
    flat)  echo "flat: SSE fan-out, $SUBS_BIG subscribers, $MSGS_FLAT msgs flat out (window 1)" ;;
    small) echo "small: SSE fan-out, $SUBS_SMALL subscribers, $MSGS_SMALL msgs flat out (window 1)" ;;
    lp)    echo "lp: long-poll fan-out, $SUBS_SMALL subscribers, $MSGS_LP msgs flat out (window 1)" ;;
    esac
}

{
    echo "herald vs nginx+nchan - $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "herald: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (single thread)"
    echo "nchan:  $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?') on $(nginx -v 2>&1 | sed 's/.*: //'), worker_processes 1 (to match herald's single thread)"
    echo "machine: $(nproc) shared cores; the load generator and the server share them, so absolute"
    echo "figures are bounded by the client too - compare the ratios, measured in the same run."
    echo "payload $SIZE bytes (wsdeflate: $DEFLATE_SIZE, $DEFLATE_PAYLOAD); latency = receive time - scheduled"
    echo "send time (see bench/README.md)."
    echo
    printf '%-9s %-22s %12s %12s %8s\n' scen metric herald nchan h/n
    fanout="deliveries_per_s lat_p50_ms lat_p99_ms lat_max_ms cpu_us_per_delivery missing pub_per_s"
    for scen in $SCENARIOS; do
        case $scen in
        idle | wsidle) metrics="rss_per_conn_bytes connected" ;;
        ws | wsdeflate) metrics="$fanout wire_bytes_per_msg" ;;
        *) metrics=$fanout ;;
        esac
        for m in $metrics; do
            h=$(get herald "$scen" "$m"); n=$(get nchan "$scen" "$m")
            [ -z "$h$n" ] && continue
            printf '%-9s %-22s %12s %12s %8s\n' "$scen" "$m" "$(fmt "$h")" "$(fmt "$n")" "$(ratio "$h" "$n")"
        done
    done
    echo
    for scen in $SCENARIOS; do describe "$scen"; done
    echo "h/n < 1 is better for latency, CPU and RSS; > 1 is better for deliveries_per_s and pub_per_s."
    echo "rss_per_conn_bytes: server RSS growth / connections, on fresh servers (restarted before each idle run);"
    echo "nchan's RSS also counts the shared-memory pages its worker touched."
    echo "wire_bytes_per_msg: WebSocket payload bytes received per message (the compressed size with deflate)."
    echo "raw results: $JSONL"
} | tee "$TABLE"
