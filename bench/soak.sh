#!/usr/bin/env bash
# bench/soak.sh - the soak benchmark: SOAK_SECONDS (600) of mixed traffic on every transport
# against one herald run as users run it (LMDB store in a fresh data directory, access control on:
# an HMAC token secret, tokens minted with `herald token`, an API key for the publishers), with
# herald's RSS, CPU time, /metrics and the clients' latency and loss sampled every INTERVAL_S
# (60 s; 10 s for runs under 5 minutes). See bench/README.md, "Soak".
#
# The traffic, all at once:
#   hot    one channel, HOT_SUBS (1,000) subscribers of the load generator over SSE, WebSocket,
#          MQTT and long poll (`herald bench --mode sse,ws,mqtt,longpoll`), HOT_RATE (20) HTTP
#          publishes/s over 4 connections; plus node clients (bench/soak_clients.mjs) on /ws,
#          STOMP, MQTT over WebSocket and iframe
#   many   MANY_CHANNELS (2,000) channels with one subscriber each (the same four transports),
#          MANY_RATE (100) MQTT QoS 1 publishes/s over 4 connections, spread over them
#          (`herald bench --channels`)
#   reconn node subscribers that drop the connection every 2-6 s and resume from their last id:
#          SSE, /ws, STOMP, MQTT with a persistent session
#   flood  one never-reading client per protocol (HTTP pipelining, MQTT PINGREQ+SUBSCRIBE,
#          WebSocket pings, SSE, /ws pings, STOMP SUBSCRIBE receipts): herald must hold each at
#          max_queued_bytes
# Every missing id or sequence number, duplicate and gap notice is counted by the clients. A
# stall probe (in the node process) watches herald's process state and GET /healthz, and the
# script reads the machine's CPU, so a stall of herald can be told from a busy machine.
#
# Environment knobs (defaults in brackets):
#   SOAK_SECONDS [600]  INTERVAL_S [60, or 10 below 300 s]  SIZE [256] payload bytes
#   HOT_SUBS [1000]  HOT_RATE [20]  HOT_MODES [sse,ws,mqtt,longpoll]
#   MANY_CHANNELS [2000]  MANY_RATE [100]  MANY_MODES [sse,ws,mqtt,longpoll]
#   JS_HOT [20] node subscribers per kind on the hot channel (/ws, STOMP, MQTT/WS; iframe: JS_HOT/5)
#   JS_RECONN [8] reconnecting subscribers per kind  FLOODS [http,mqtt,ws,sse,wsjson,stomp]
#   TOKENS [200] distinct users  HISTORY_AGE [120] herald's history_age (s)  HERALD_FLAGS [] more
#   `herald serve` flags  HERALD_BIN [build/herald, made first] the binary to run (no make)
# herald runs with its defaults except history_age: 120 s instead of 3600 s, so the history it
# holds stops growing after two minutes and any other growth shows. With the default, the
# many-channel history grows for the whole run (about 1 KB of RSS per message held).
# Writes bench/results/soak-<stamp>.{txt,jsonl}. Every process it starts is stopped by PID;
# the watchdog bounds the whole script to SOAK_SECONDS + 300 s.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SOAK_SECONDS=${SOAK_SECONDS:-600}
if [ "$SOAK_SECONDS" -lt 300 ]; then INTERVAL_S=${INTERVAL_S:-10}; else INTERVAL_S=${INTERVAL_S:-60}; fi
SIZE=${SIZE:-256}
HOT_SUBS=${HOT_SUBS:-1000}
HOT_RATE=${HOT_RATE:-20}
HOT_MODES=${HOT_MODES:-sse,ws,mqtt,longpoll}
MANY_CHANNELS=${MANY_CHANNELS:-2000}
MANY_RATE=${MANY_RATE:-100}
MANY_MODES=${MANY_MODES:-sse,ws,mqtt,longpoll}
JS_HOT=${JS_HOT:-20}
JS_RECONN=${JS_RECONN:-8}
FLOODS=${FLOODS:-http,mqtt,ws,sse,wsjson,stomp}
TOKENS=${TOKENS:-200}
HISTORY_AGE=${HISTORY_AGE:-120}
HERALD_FLAGS=${HERALD_FLAGS:-}
BUDGET_S=$((SOAK_SECONDS + 300))
NSAMPLES=$((SOAK_SECONDS / INTERVAL_S))
[ "$NSAMPLES" -ge 1 ] || { log "SOAK_SECONDS must be at least INTERVAL_S ($INTERVAL_S)"; exit 1; }

for t in jq node curl; do command -v $t >/dev/null || { log "$t is needed"; exit 1; }; done
[ -d tests/node_modules/ws ] || { log "tests/node_modules is missing: (cd tests && npm ci)"; exit 1; }
if [ -z "${HERALD_BIN:-}" ]; then
    make -s build/herald >&2
    HERALD_BIN=build/herald
fi
[ -x "$HERALD_BIN" ] || { log "no herald binary at $HERALD_BIN"; exit 1; }
START=$(date +%s)
TMP=$(mktemp -d /tmp/herald-soak.XXXXXX)
cp "$HERALD_BIN" "$TMP/herald" # the binary may be rebuilt during the run
HERALD="$TMP/herald"
mkdir -p bench/results
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=bench/results/soak-$STAMP
HERALD_PID="" HOT_PID="" MANY_PID="" JS_PID=""
cleanup() {
    local rc=$?
    stop_pid "$JS_PID"
    stop_pid "$HOT_PID"
    stop_pid "$MANY_PID"
    stop_pid "$HERALD_PID"
    stop_watchdog
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
start_watchdog

# ---- credentials: an HMAC secret, an API key for the publishers, TOKENS user tokens ----
node -e 'const c = require("crypto"); process.stdout.write(c.randomBytes(32).toString("hex"))' >"$TMP/secret"
node -e 'const c = require("crypto"); console.log(c.randomBytes(24).toString("hex"))' >"$TMP/api.key"
API_KEY=$(head -n1 "$TMP/api.key")
log "minting $TOKENS tokens with herald token ..."
for i in $(seq 0 $((TOKENS - 1))); do
    "$HERALD" token --token_hmac_secret_file "$TMP/secret" --sub "soak$i" --subscribe 'soak/#' \
        --publish 'soak/#' --ttl "$((SOAK_SECONDS + 3600))"
done >"$TMP/tokens"

# ---- herald, as users run it (plus room for the connections if the defaults are too few) ----
HTTP_PORT=$(free_port)
MQTT_PORT=$(free_port)
while [ "$MQTT_PORT" = "$HTTP_PORT" ]; do MQTT_PORT=$(free_port); done
CONNS=$((HOT_SUBS + MANY_CHANNELS + 4 * JS_HOT + 4 * JS_RECONN + 50))
EXTRA=()
[ "$CONNS" -le 9000 ] || EXTRA=(--max_connections 20000)
# shellcheck disable=SC2086
"$HERALD" serve --http "127.0.0.1:$HTTP_PORT" --mqtt "127.0.0.1:$MQTT_PORT" --data_dir "$TMP/data" \
    --token_hmac_secret_file "$TMP/secret" --api_keys_file "$TMP/api.key" --history_age "$HISTORY_AGE" \
    ${EXTRA[@]+"${EXTRA[@]}"} $HERALD_FLAGS >"$TMP/herald.log" 2>&1 &
HERALD_PID=$!
if ! { wait_listen "$HTTP_PORT" "$HERALD_PID" && wait_listen "$MQTT_PORT" "$HERALD_PID"; }; then
    log "herald did not start:"
    cat "$TMP/herald.log" >&2
    exit 1
fi
log "herald pid $HERALD_PID on http 127.0.0.1:$HTTP_PORT, mqtt 127.0.0.1:$MQTT_PORT (a copy of $HERALD_BIN)"

# ---- the clients ----
# The load generators publish 5 s longer than the sampling lasts, so the last sample is still
# taken under load; then they drain and report.
HOT_MSGS=$((HOT_RATE * (SOAK_SECONDS + 5)))
MANY_MSGS=$((MANY_RATE * (SOAK_SECONDS + 5)))
LG_TIMEOUT=$((SOAK_SECONDS + 120))
node bench/soak_clients.mjs --url "http://127.0.0.1:$HTTP_PORT" --mqtt-port "$MQTT_PORT" --hot soak/hot \
    --hot-messages "$HOT_MSGS" --many soak/many --many-count "$MANY_CHANNELS" --tokens "$TMP/tokens" \
    --api-key "$API_KEY" --herald-pid "$HERALD_PID" --wsjson "$JS_HOT" --stomp "$JS_HOT" --mqttws "$JS_HOT" --iframe $((JS_HOT / 5)) \
    --reconn "$JS_RECONN" --floods "$FLOODS" --max-seconds $((SOAK_SECONDS + 200)) \
    >"$TMP/js.jsonl" 2>"$TMP/js.log" &
JS_PID=$!
"$HERALD" bench --url "http://127.0.0.1:$HTTP_PORT" --mqtt-url "mqtt://127.0.0.1:$MQTT_PORT" --channel soak/hot \
    --mode "$HOT_MODES" --subs "$HOT_SUBS" --messages "$HOT_MSGS" --rate "$HOT_RATE" --size "$SIZE" \
    --pub-conns 4 --tokens-file "$TMP/tokens" --pub-key "$API_KEY" --warmup-ms 1000 --timeout-s "$LG_TIMEOUT" \
    --server-pid "$HERALD_PID" --intervals --json >"$TMP/hot.jsonl" 2>"$TMP/hot.log" &
HOT_PID=$!
"$HERALD" bench --url "http://127.0.0.1:$HTTP_PORT" --mqtt-url "mqtt://127.0.0.1:$MQTT_PORT" --channel soak/many \
    --channels "$MANY_CHANNELS" --mode "$MANY_MODES" --subs "$MANY_CHANNELS" --messages "$MANY_MSGS" \
    --rate "$MANY_RATE" --size "$SIZE" --pub-via mqtt --qos 1 --pub-conns 4 --tokens-file "$TMP/tokens" --token "$API_KEY" \
    --warmup-ms 1000 --timeout-s "$LG_TIMEOUT" --server-pid "$HERALD_PID" --intervals --json \
    >"$TMP/many.jsonl" 2>"$TMP/many.log" &
MANY_PID=$!

wait_for_text() { # wait_for_text FILE TEXT PID SECONDS
    for _ in $(seq $(($4 * 10))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
wait_for_text "$TMP/js.log" started "$JS_PID" 30 || { log "soak clients did not start:"; cat "$TMP/js.log" >&2; exit 1; }
for n in hot many; do
    pid=$HOT_PID
    [ $n = many ] && pid=$MANY_PID
    wait_for_text "$TMP/$n.log" "bench: publishing" "$pid" 120 ||
        { log "load generator ($n) did not start publishing:"; cat "$TMP/$n.log" >&2; exit 1; }
done
log "publishing; sampling every ${INTERVAL_S}s for ${SOAK_SECONDS}s"

# ---- sampling ----
PROC_RSS=0 PROC_ANON=0 PROC_FILE=0 PROC_HWM=0 PROC_CPU=0 CLI_CPU=0 MACH_BUSY=0 MACH_IOW=0
HZ=$(getconf CLK_TCK)
cpu_of() { # cpu_of PID: utime + stime in seconds (0 when gone)
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk -v hz="$HZ" '{ printf "%.2f", ($12 + $13) / hz }' || echo 0
}
read_proc() { # herald's memory (kB) and CPU time (s), the clients' CPU, the machine's busy and iowait time
    PROC_RSS=$(awk '/^VmRSS:/ {print $2}' "/proc/$HERALD_PID/status")
    PROC_ANON=$(awk '/^RssAnon:/ {print $2}' "/proc/$HERALD_PID/status")
    PROC_FILE=$(awk '/^RssFile:/ {print $2}' "/proc/$HERALD_PID/status")
    PROC_HWM=$(awk '/^VmHWM:/ {print $2}' "/proc/$HERALD_PID/status")
    PROC_CPU=$(cpu_of "$HERALD_PID")
    CLI_CPU=$(awk -v a="$(cpu_of "$HOT_PID")" -v b="$(cpu_of "$MANY_PID")" -v c="$(cpu_of "$JS_PID")" \
        'BEGIN { printf "%.2f", a + b + c }')
    read -r MACH_BUSY MACH_IOW < <(awk -v hz="$HZ" '$1 == "cpu" {
        printf "%.2f %.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / hz, $6 / hz }' /proc/stat)
}
M_PUB=0 M_DELIV=0 M_CONNS=0 M_DROPS=0 M_PAUSES=0 M_CHANNELS=0
read_metrics() {
    local m
    m=$(curl -s --max-time 10 -H "Authorization: Bearer $API_KEY" "http://127.0.0.1:$HTTP_PORT/metrics") || m=""
    eval "$(echo "$m" | awk '
        /^herald_messages_published_total / { pub = $2 }
        /^herald_messages_delivered_total\{/ { del += $2 }
        /^herald_connections\{/ { con += $2 }
        /^herald_queue_drops_total / { drop = $2 }
        /^herald_read_pauses_total / { pause = $2 }
        /^herald_channels / { ch = $2 }
        END { printf "M_PUB=%d M_DELIV=%d M_CONNS=%d M_DROPS=%d M_PAUSES=%d M_CHANNELS=%d\n", pub, del, con, drop, pause, ch }')"
}
wait_lines() { # wait_lines FILE N PID: up to 30 s for N interval lines in FILE
    for _ in $(seq 300); do
        [ "$(grep -c '^{"interval":[0-9]' "$1" 2>/dev/null || true)" -ge "$2" ] && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
line_of() { grep '^{"interval":[0-9]' "$1" 2>/dev/null | sed -n "${2}p"; } # line_of FILE N: interval line N
jf() { # jf JSON FILTER [DEFAULT]: one value of a client's JSON line, DEFAULT (0) when absent
    local v=""
    [ -n "$1" ] && v=$(echo "$1" | jq -r "$2 // empty" 2>/dev/null)
    echo "${v:-${3-0}}"
}

TABLE="$TMP/table.txt"
HDR='%5s %6s %7s %6s %5s %5s %5s %5s %6s %6s %7s %6s %7s %7s %8s %7s %7s %6s %7s %5s %5s %6s %8s %8s\n'
printf "$HDR" t_s rss_MB anon_MB filMB cpu% cli% oth% iow% pub/s lag_ms deliv/s conns hot_p50 hot_p99 many_p99 js_p99 \
    hz_max D_ms missing dups gaps drops hist_msg flood_MB | tee "$TABLE"
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
P_T=0 P_CPU=0 P_PUB=0 P_DELIV=0 P_CLI=0 P_BUSY=0 P_IOW=0
FIRST_ANON="" FIRST_RSS="" FIRST_HIST="" FIRST_HISTB="" FIRST_CPU="" FIRST_DELIV=""
sample() { # sample K: one row (K = 0: the start)
    local k=$1 now hot many js
    now=$(date +%s.%N)
    read_proc
    read_metrics
    kill -USR2 "$HOT_PID" "$MANY_PID" "$JS_PID" 2>/dev/null || true
    wait_lines "$TMP/hot.jsonl" $((k + 1)) "$HOT_PID" || log "no interval report from the hot load generator"
    wait_lines "$TMP/many.jsonl" $((k + 1)) "$MANY_PID" || log "no interval report from the many-channel load generator"
    wait_lines "$TMP/js.jsonl" $((k + 1)) "$JS_PID" || log "no interval report from the node clients"
    hot=$(line_of "$TMP/hot.jsonl" $((k + 1)))
    many=$(line_of "$TMP/many.jsonl" $((k + 1)))
    js=$(line_of "$TMP/js.jsonl" $((k + 1)))
    local dt cpu_pct cli_pct oth_pct iow_pct pub_s lag del_s missing dups gaps hp50 hp99 mp99 jp99 hmsg hbytes flood hz dms
    dt=$(awk -v a="$now" -v b="$P_T" 'BEGIN { print (b > 0 ? a - b : 0) }')
    cpu_pct=$(awk -v a="$PROC_CPU" -v b="$P_CPU" -v t="$dt" 'BEGIN { if (t > 0) printf "%.0f", (a - b) * 100 / t; else print "-" }')
    pct() { awk -v a="$1" -v b="$2" -v t="$dt" 'BEGIN { if (t > 0) printf "%.0f", (a - b) * 100 / t; else print "-" }'; }
    cli_pct=$(pct "$CLI_CPU" "$P_CLI")
    iow_pct=$(pct "$MACH_IOW" "$P_IOW")
    oth_pct=$(awk -v m="$MACH_BUSY" -v pm="$P_BUSY" -v h="$PROC_CPU" -v ph="$P_CPU" -v c="$CLI_CPU" -v pc="$P_CLI" \
        -v t="$dt" 'BEGIN { if (t > 0) { v = ((m - pm) - (h - ph) - (c - pc)) * 100 / t; printf "%.0f", v < 0 ? 0 : v } else print "-" }')
    pub_s=$(awk -v a="$M_PUB" -v b="$P_PUB" -v t="$dt" 'BEGIN { if (t > 0) printf "%.0f", (a - b) / t; else print "-" }')
    del_s=$(awk -v a="$M_DELIV" -v b="$P_DELIV" -v t="$dt" 'BEGIN { if (t > 0) printf "%.0f", (a - b) / t; else print "-" }')
    missing=$(($(jf "$hot" '.missing') + $(jf "$many" '.missing') + $(jf "$js" '.missing')))
    dups=$(($(jf "$hot" '.duplicates') + $(jf "$many" '.duplicates') + $(jf "$js" '.dups')))
    gaps=$(($(jf "$hot" '.gap_events') + $(jf "$many" '.gap_events') + $(jf "$js" '.gaps')))
    hp50=$(fmt "$(jf "$hot" '.lat_p50_ms' '')")
    hp99=$(fmt "$(jf "$hot" '.lat_p99_ms' '')")
    mp99=$(fmt "$(jf "$many" '.lat_p99_ms' '')")
    jp99=$(fmt "$(jf "$js" '.lat_p99_ms' '')")
    hmsg=$(jf "$js" '.history.messages')
    hbytes=$(jf "$js" '.history.bytes')
    flood=$(jf "$js" '[.floods[]?.accepted_kb] | add')
    hz=$(fmt "$(jf "$js" '.probe.healthz_max_ms' '')")
    lag=$(fmt "$(awk -v a="$(jf "$hot" .pub_lag_max_ms)" -v b="$(jf "$many" .pub_lag_max_ms)" 'BEGIN { print (a > b ? a : b) }')")
    dms=$(jf "$js" '.probe.d_state_ms' '-')
    printf "$HDR" "$(awk -v a="$now" -v b="$T_BEGIN" 'BEGIN { printf "%.0f", a - b }')" "$(mb "$PROC_RSS")" \
        "$(mb "$PROC_ANON")" "$(mb "$PROC_FILE")" "$cpu_pct" "$cli_pct" "$oth_pct" "$iow_pct" "$pub_s" "$lag" "$del_s" \
        "$M_CONNS" "$hp50" "$hp99" "$mp99" "$jp99" "$hz" "$dms" "$missing" "$dups" "$gaps" "$M_DROPS" "$hmsg" \
        "$(mb "$flood")" | tee -a "$TABLE"
    printf '{"sample":%d,"t":%s,"rss_kb":%d,"anon_kb":%d,"file_kb":%d,"hwm_kb":%d,"cpu_s":%s,"clients_cpu_s":%s,%s,%s}\n' \
        "$k" "$now" "$PROC_RSS" "$PROC_ANON" "$PROC_FILE" "$PROC_HWM" "$PROC_CPU" "$CLI_CPU" \
        "$(printf '"machine_busy_s":%s,"machine_iowait_s":%s,"published":%d' "$MACH_BUSY" "$MACH_IOW" "$M_PUB")" \
        "$(printf '"delivered":%d,"connections":%d,"queue_drops":%d,"read_pauses":%d,"channels":%d,"hist_messages":%d,"hist_bytes":%d' \
            "$M_DELIV" "$M_CONNS" "$M_DROPS" "$M_PAUSES" "$M_CHANNELS" "$hmsg" "$hbytes")" >>"$TMP/samples.jsonl"
    if [ "$k" -eq 1 ]; then
        FIRST_RSS=$PROC_RSS FIRST_ANON=$PROC_ANON FIRST_HIST=$hmsg FIRST_HISTB=$hbytes
    fi
    if [ "$k" -eq 0 ]; then FIRST_CPU=$PROC_CPU FIRST_DELIV=$M_DELIV; fi
    LAST_RSS=$PROC_RSS LAST_ANON=$PROC_ANON LAST_HIST=$hmsg LAST_HISTB=$hbytes
    P_T=$now P_CPU=$PROC_CPU P_PUB=$M_PUB P_DELIV=$M_DELIV P_CLI=$CLI_CPU P_BUSY=$MACH_BUSY P_IOW=$MACH_IOW
}

T_BEGIN=$(date +%s.%N)
sample 0
for k in $(seq "$NSAMPLES"); do
    # in the background, so that a signal (the watchdog, ^C) is handled at once, not after the sleep
    sleep "$(awk -v b="$T_BEGIN" -v k="$k" -v i="$INTERVAL_S" -v n="$(date +%s.%N)" \
        'BEGIN { d = b + k * i - n; print (d > 0 ? d : 0) }')" &
    wait $! || true
    kill -0 "$HERALD_PID" 2>/dev/null || { log "herald died"; break; }
    sample "$k"
done

# ---- the end: the load generators drain and report, the node clients catch up and report ----
for pid in $HOT_PID $MANY_PID; do
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
HOT_RC=0 MANY_RC=0 JS_RC=0
wait "$HOT_PID" || HOT_RC=$?
wait "$MANY_PID" || MANY_RC=$?
HOT_PID="" MANY_PID=""
kill -TERM "$JS_PID" 2>/dev/null || true
for _ in $(seq 300); do kill -0 "$JS_PID" 2>/dev/null || break; sleep 0.1; done
wait "$JS_PID" || JS_RC=$?
JS_PID=""
read_proc
read_metrics
END_CPU=$PROC_CPU
kill -TERM "$HERALD_PID"
HERALD_RC=0
for _ in $(seq 150); do kill -0 "$HERALD_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$HERALD_PID" 2>/dev/null; then
    log "herald did not exit within 15 s of SIGTERM: killing it"
    kill -KILL "$HERALD_PID" 2>/dev/null || true
fi
wait "$HERALD_PID" || HERALD_RC=$?
HERALD_PID=""

# ---- verdict ----
HOT_F=$(grep '"scenario"' "$TMP/hot.jsonl" | tail -n1 || true)
MANY_F=$(grep '"scenario"' "$TMP/many.jsonl" | tail -n1 || true)
JS_F=$(grep '"interval":"final"' "$TMP/js.jsonl" | tail -n1 || true)
jn() { jf "$1" "$2"; }
C_DELIV=$(($(jn "$HOT_F" .deliveries) + $(jn "$MANY_F" .deliveries) + $(jn "$JS_F" .deliveries)))
C_MISS=$(($(jn "$HOT_F" .missing) + $(jn "$MANY_F" .missing) + $(jn "$JS_F" .missing)))
C_DUPS=$(($(jn "$HOT_F" .duplicates) + $(jn "$MANY_F" .duplicates) + $(jn "$JS_F" .dups)))
C_GAPS=$(($(jn "$HOT_F" .gap_events) + $(jn "$MANY_F" .gap_events) + $(jn "$JS_F" .gaps)))
C_BAD=$(($(jn "$HOT_F" .bad_events) + $(jn "$MANY_F" .bad_events) + $(jn "$JS_F" .bad)))
C_DISC=$(($(jn "$HOT_F" .sub_disconnects) + $(jn "$MANY_F" .sub_disconnects) + $(jn "$JS_F" .closed_by_server)))
C_PUBERR=$(($(jn "$HOT_F" .pub_err) + $(jn "$MANY_F" .pub_err)))
{
    echo
    echo "clients (their own counts, after the drain):"
    printf '  %-34s %9s %10s %8s %5s %5s %6s %8s %8s  %s\n' who subs deliveries missing dups gaps closed p50_ms p99_ms error
    for n in hot many; do
        f=$HOT_F
        [ $n = many ] && f=$MANY_F
        [ -n "$f" ] || { echo "  $n: no final report"; continue; }
        printf '  %-34s %9s %10s %8s %5s %5s %6s %8s %8s  %s\n' "$n: $(jn "$f" .mode)" "$(jn "$f" .subs_connected)" \
            "$(jn "$f" .deliveries)" "$(jn "$f" .missing)" "$(jn "$f" .duplicates)" "$(jn "$f" .gap_events)" \
            "$(jn "$f" .sub_disconnects)" "$(fmt "$(jn "$f" .lat_p50_ms)")" "$(fmt "$(jn "$f" .lat_p99_ms)")" \
            "$(jf "$f" .error '')"
    done
    if [ -n "$JS_F" ]; then
        echo "$JS_F" | jq -r '.groups | to_entries[] | [.key, .value.clients, .value.deliveries, .value.missing,
            .value.dups, .value.gaps, .value.closed_by_server, .value.reconnects, .value.late, .value.redelivered] | @tsv' |
            while IFS=$'\t' read -r g n d m u ga cl rc lt rd; do
                printf '  %-34s %9s %10s %8s %5s %5s %6s %8s %8s  %s\n' "node $g" "$n" "$d" "$m" "$u" "$ga" "$cl" - - \
                    "reconnects $rc, reordered $lt, DUP redeliveries $rd"
            done
        echo "  floods (never read): $(echo "$JS_F" | jq -r '.floods | to_entries | map("\(.key) \(.value.accepted_kb / 1024 | floor) MB in \(.value.conns) conn(s)") | join(", ")')"
        [ "$(echo "$JS_F" | jq -r '.first_errors | length')" -gt 0 ] && echo "  node errors: $(echo "$JS_F" | jq -c .first_errors)"
    else
        echo "  node clients: no final report"
    fi
    echo
    echo "herald log: $(grep -c . "$TMP/herald.log" || true) lines; by message (numbers masked):"
    sed -E 's/^[0-9T:.Z-]+ //; s/[0-9]+/N/g' "$TMP/herald.log" | sort | uniq -c | sort -rn | head -n 25 | sed 's/^/  /'
    echo
    # Once the history holds HISTORY_AGE seconds of messages it stops growing: from the first
    # sample after that on, the memory should be flat.
    steady=$(((HISTORY_AGE + INTERVAL_S - 1) / INTERVAL_S + 1))
    [ "$steady" -lt "$NSAMPLES" ] || steady=""
    awk -v fr="$FIRST_RSS" -v lr="$LAST_RSS" -v fa="$FIRST_ANON" -v la="$LAST_ANON" -v fh="$FIRST_HIST" \
        -v lh="$LAST_HIST" -v fb="$FIRST_HISTB" -v lb="$LAST_HISTB" -v i="$INTERVAL_S" -v n="$NSAMPLES" \
        -v st="$steady" 'BEGIN {
        da = la - fa; dh = lh - fh
        printf "verdict: RSS %.1f MB after %ds -> %.1f MB after %ds (%+.1f MB, %+.1f%%); anon %+.1f MB",
            fr / 1024, i, lr / 1024, n * i, (lr - fr) / 1024, (fr ? (lr - fr) * 100 / fr : 0), da / 1024
        printf " while the history went from %d to %d messages (%+.1f MB of payload)", fh, lh, (lb - fb) / 1048576
        if (st == "" && dh > 1000) printf ": %.0f bytes of anon per message added", (da * 1024) / dh
        printf "\n"
    }'
    flat="not judged: the history grows all run (HISTORY_AGE >= the run)"
    if [ -n "$steady" ]; then
        read -r s_rss s_anon s_h0 s_h1 s_hwm < <(jq -rs --argjson k "$steady" '(.[] | select(.sample == $k)) as $a |
            .[-1] as $b | "\($b.rss_kb - $a.rss_kb) \($b.anon_kb - $a.anon_kb) \($a.hist_messages) \($b.hist_messages) \($b.hwm_kb)"' \
            "$TMP/samples.jsonl")
        awk -v r="$s_rss" -v a="$s_anon" -v h0="$s_h0" -v h1="$s_h1" -v hwm="$s_hwm" -v t0=$((steady * INTERVAL_S)) \
            -v t1=$((NSAMPLES * INTERVAL_S)) 'BEGIN {
            printf "         from %ds (history steady: %d -> %d messages) to %ds: RSS %+.1f MB, anon %+.1f MB; peak RSS (VmHWM) %.1f MB\n",
                t0, h0, h1, t1, r / 1024, a / 1024, hwm / 1024 }'
        if awk -v a="$s_anon" -v l="$LAST_ANON" 'BEGIN { exit !(a <= 2048 || a <= l * 0.05) }'; then
            flat="flat (anon $(mb "$s_anon") MB from $((steady * INTERVAL_S))s on, with the history steady; the bound: 2 MB or 5 %)"
        else
            flat="GROWING (anon +$(mb "$s_anon") MB from $((steady * INTERVAL_S))s on, with the history steady)"
        fi
    fi
    awk -v pub="$M_PUB" -v del="$M_DELIV" -v cd="$C_DELIV" -v cm="$C_MISS" -v cu="$C_DUPS" -v cg="$C_GAPS" \
        -v cb="$C_BAD" -v cc="$C_DISC" -v pe="$C_PUBERR" -v c0="$FIRST_CPU" -v c1="$END_CPU" -v d0="$FIRST_DELIV" \
        -v hrc="$HERALD_RC" 'BEGIN {
        printf "         published %d, delivered %d (herald /metrics); counted by the clients: %d deliveries, %d missing,", pub, del, cd, cm
        printf " %d duplicates, %d gap notices, %d unparsed, %d closed by herald, %d failed publishes\n", cu, cg, cb, cc, pe
        printf "         herald CPU %.1f s while publishing = %.2f us per delivery; exit %d on SIGTERM%s\n",
            c1 - c0, (del > d0 ? (c1 - c0) * 1e6 / (del - d0) : 0), hrc, (hrc == 0 ? " (clean shutdown)" : " (NOT clean)")
    }'
    loss="none"
    [ $((C_MISS + C_DUPS + C_GAPS + C_PUBERR)) -eq 0 ] ||
        loss="$C_MISS missing, $C_DUPS duplicates, $C_GAPS gap notices, $C_PUBERR failed publishes"
    echo "result: loss: $loss; memory: $flat; shutdown: $([ "$HERALD_RC" -eq 0 ] && echo clean || echo "exit $HERALD_RC")"
} | tee -a "$TABLE"
grep -q "stopped cleanly" "$TMP/herald.log" || log "herald's log does not end with 'stopped cleanly'"
cp "$TABLE" "$OUT.txt"
cat "$TMP/samples.jsonl" >"$OUT.jsonl"
for f in hot many js; do jq -c --arg s "$f" '. + {source: $s}' "$TMP/$f.jsonl" >>"$OUT.jsonl" 2>/dev/null || true; done
cp "$TMP/herald.log" "$OUT.herald.log"
log "hot load generator exit $HOT_RC, many-channel $MANY_RC, node clients $JS_RC"
log "results: $OUT.txt, $OUT.jsonl, $OUT.herald.log"
[ "$HERALD_RC" -eq 0 ] && [ $((C_MISS + C_DUPS + C_GAPS)) -eq 0 ]
