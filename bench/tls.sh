#!/usr/bin/env bash
# bench/tls.sh - issue 14's benchmark: herald's TLS listeners against nginx+nchan behind nginx's
# TLS (SSE, WebSocket) and Mosquitto's TLS listener (MQTT), in one run, with the same load
# generator speaking TLS (`herald bench --tls`). Prints both figures and the ratios, and writes
# bench/results/tls-<stamp>.{jsonl,txt}. See bench/README.md ("TLS").
#
# Environment knobs (defaults in brackets):
#   SUBS [2000]  MSGS [500]            SSE and WebSocket fan-out over TLS, flat out (window 1)
#   SUBS_MQTT [1000]  MSGS_MQTT [1000] MQTT QoS 0 fan-out over TLS, flat out (window 1)
#   IDLE_CONNS [2000]                  idle TLS subscribers (SSE; MQTT): RSS per connection
#   HS_CONNS [2000]  HS_INFLIGHT [100] handshake rate: HS_CONNS TLS handshakes, HS_INFLIGHT at a time
#   SIZE [64]  RUN_TIMEOUT_S [60]  BUDGET_S [420]
#   SCENARIOS ["idle mqidle hs mqhs sse ws mqtt"]
#   PLAIN [1]  1: also run herald's plain listeners (http, mqtt) on idle, mqidle, sse, ws and mqtt,
#              for what TLS costs herald itself (the "plain" column and the tls/plain ratio)
# A throwaway CA and an ECDSA P-256 server certificate (SAN DNS:localhost, IP:127.0.0.1) are made
# with the openssl CLI in a temporary directory; the load generator verifies the servers against
# that CA (--cacert). herald runs as users run it: default store (LMDB), no access control (the
# plain comparisons run without it too), one process serving https and mqtts. nginx runs one
# worker (herald is single-threaded) and is measured master + worker summed; Mosquitto is single-
# threaded. The idle scenarios run on fresh servers (herald is restarted before mqidle). Every
# process the script starts is stopped by PID on exit; the whole script is bounded by BUDGET_S.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULTS="$ROOT/bench/results"
SUBS=${SUBS:-2000}
MSGS=${MSGS:-500}
SUBS_MQTT=${SUBS_MQTT:-1000}
MSGS_MQTT=${MSGS_MQTT:-1000}
IDLE_CONNS=${IDLE_CONNS:-2000}
HS_CONNS=${HS_CONNS:-2000}
HS_INFLIGHT=${HS_INFLIGHT:-100}
SIZE=${SIZE:-64}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-60}
BUDGET_S=${BUDGET_S:-420}
SCENARIOS=${SCENARIOS:-"idle mqidle hs mqhs sse ws mqtt"}
PLAIN=${PLAIN:-1}
NCHAN_SO=${NCHAN_SO:-/usr/share/nginx/modules/ngx_nchan_module.so}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}

TMP=$(mktemp -d /tmp/herald-tls-bench.XXXXXX)
HERALD_PID=""
NGINX_PID=""
NCHAN_WORKER=""
MOSQ_PID=""
WATCHDOG_PID=""
START=$(date +%s)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

cleanup() {
    local rc=$?
    stop_pid "$HERALD_PID"
    stop_pid "$NGINX_PID"
    stop_pid "$MOSQ_PID"
    stop_watchdog
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

start_watchdog

for t in jq openssl nginx; do command -v "$t" >/dev/null || { log "$t is required"; exit 1; }; done
[ -f "$NCHAN_SO" ] || { log "nchan module not found at $NCHAN_SO (apt-get install libnginx-mod-nchan)"; exit 1; }
[ -x "$MOSQUITTO" ] || { log "$MOSQUITTO not found (apt-get install mosquitto)"; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "building herald (make build/herald)"
make -C "$ROOT" --no-print-directory build/herald >&2
LOADGEN=("$ROOT/build/herald" bench)

# ---- a throwaway CA and server certificate ----
(
    cd "$TMP"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -days 2 -subj "/CN=herald bench CA" -out ca.crt
    openssl ecparam -name prime256v1 -genkey -noout -out server.key
    openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
    printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
        'keyUsage=digitalSignature' 'extendedKeyUsage=serverAuth' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.crt
    chmod 600 ca.key server.key
) >"$TMP/openssl.log" 2>&1 || { log "openssl failed:"; cat "$TMP/openssl.log" >&2; exit 1; }
CERT="$TMP/server.crt"
KEY="$TMP/server.key"
CA="$TMP/ca.crt"

# ---- servers ----
HERALD_HTTP=""
HERALD_MQTT=""
HERALD_HTTPS=""
HERALD_MQTTS=""
NCHAN_PORT=""
MOSQ_PORT=""

ports() { # ports N: N distinct free loopback ports
    local out=() p
    while [ ${#out[@]} -lt "$1" ]; do
        p=$(free_port)
        [[ " ${out[*]} " == *" $p "* ]] || out+=("$p")
    done
    echo "${out[@]}"
}

start_herald() {
    read -r HERALD_HTTP HERALD_MQTT HERALD_HTTPS HERALD_MQTTS <<<"$(ports 4)"
    rm -rf "$TMP/herald-data"
    "$ROOT/build/herald" serve --http "127.0.0.1:$HERALD_HTTP" --https "127.0.0.1:$HERALD_HTTPS" \
        --mqtt "127.0.0.1:$HERALD_MQTT" --mqtts "127.0.0.1:$HERALD_MQTTS" --tls-cert "$CERT" --tls-key "$KEY" \
        --max-connections 20000 --log-level warn --data-dir "$TMP/herald-data" >"$TMP/herald.log" 2>&1 &
    HERALD_PID=$!
    wait_listen "$HERALD_HTTPS" "$HERALD_PID" && wait_listen "$HERALD_MQTTS" "$HERALD_PID" ||
        { log "herald did not start:"; cat "$TMP/herald.log" >&2; exit 1; }
    log "herald pid $HERALD_PID: https 127.0.0.1:$HERALD_HTTPS, mqtts 127.0.0.1:$HERALD_MQTTS (plain: $HERALD_HTTP, $HERALD_MQTT)"
}

start_nchan() {
    NCHAN_PORT=$(free_port)
    rm -rf "$TMP/nginx"
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<NGINX_CONF
# generated by bench/tls.sh; one worker to match herald's single thread
$(nchan_main_conf "$TMP/nginx")
http {
    access_log $TMP/nginx/access.log combined buffer=64k flush=1s;
$(nginx_temp_paths "$TMP/nginx")
    nchan_message_buffer_length 1000;
    nchan_message_timeout 1h;
    server {
        listen 127.0.0.1:$NCHAN_PORT ssl backlog=4096;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
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
    wait_listen "$NCHAN_PORT" "$NGINX_PID" ||
        { log "nginx did not start:"; cat "$TMP/nginx/error.log" "$TMP/nginx/stdout.log" >&2; exit 1; }
    for _ in $(seq 50); do NCHAN_WORKER=$(pgrep -P "$NGINX_PID" | head -n1) && [ -n "$NCHAN_WORKER" ] && break; sleep 0.1; done
    [ -n "$NCHAN_WORKER" ] || { log "no nginx worker process"; exit 1; }
    log "nginx+nchan master $NGINX_PID worker $NCHAN_WORKER: https 127.0.0.1:$NCHAN_PORT"
}

start_mosquitto() {
    MOSQ_PORT=$(free_port)
    cat >"$TMP/mosquitto.conf" <<MOSQ_CONF
# generated by bench/tls.sh (not the system service's config); as bench/compare_mosquitto.sh, plus TLS
listener $MOSQ_PORT 127.0.0.1
certfile $CERT
keyfile $KEY
allow_anonymous true
persistence false
max_queued_messages 1000000
max_connections -1
set_tcp_nodelay true
user $(id -un)
log_dest stderr
log_type error
log_type warning
MOSQ_CONF
    "$MOSQUITTO" -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
    MOSQ_PID=$!
    wait_listen "$MOSQ_PORT" "$MOSQ_PID" || { log "mosquitto did not start:"; cat "$TMP/mosquitto.log" >&2; exit 1; }
    log "mosquitto pid $MOSQ_PID: mqtts 127.0.0.1:$MOSQ_PORT"
}

start_herald
start_nchan
start_mosquitto
HERALD_USED=0 # restart herald before an idle scenario once something ran on it

mkdir -p "$RESULTS"
STAMP=$(date +%Y%m%d-%H%M%S)
JSONL="$RESULTS/tls-$STAMP.jsonl"
TABLE="$RESULTS/tls-$STAMP.txt"
: >"$JSONL"

# run_one SERVER SCENARIO ARGS... : one load-generator run over TLS (herald-plain: without), its JSON
# line tagged and appended
run_one() {
    local server=$1 scen=$2; shift 2
    local url mqurl pids alive style=herald tls=(--tls --cacert "$CA")
    case $server in
    herald) url=$HERALD_HTTPS; mqurl=$HERALD_MQTTS; pids=$HERALD_PID; alive=$HERALD_PID; HERALD_USED=1 ;;
    herald-plain) url=$HERALD_HTTP; mqurl=$HERALD_MQTT; pids=$HERALD_PID; alive=$HERALD_PID; HERALD_USED=1; tls=() ;;
    nchan) url=$NCHAN_PORT; mqurl=1; pids="$NGINX_PID,$NCHAN_WORKER"; alive=$NCHAN_WORKER; style=nchan ;;
    mosquitto) url=1; mqurl=$MOSQ_PORT; pids=$MOSQ_PID; alive=$MOSQ_PID ;;
    esac
    budget_ok "$RUN_TIMEOUT_S" || { log "skipping $scen on $server: not enough time left in the budget"; return 0; }
    kill -0 "$alive" 2>/dev/null || { log "$server (pid $alive) is not running; skipping $scen"; return 0; }
    sleep 1 # let the server finish closing the previous run's connections
    log "$scen on $server ..."
    local line rc=0
    line=$(timeout $((RUN_TIMEOUT_S + 30)) "${LOADGEN[@]}" "${tls[@]}" \
        --url "http://127.0.0.1:$url" --mqtt-url "mqtt://127.0.0.1:$mqurl" --pub-path-style "$style" \
        --channel "b$$-$scen" --server-pid "$pids" --timeout-s "$RUN_TIMEOUT_S" --size "$SIZE" \
        --json --quiet "$@") || rc=$?
    if [ -z "$line" ]; then
        log "$scen on $server produced no result (exit $rc)"
        return 0
    fi
    [ $rc -eq 0 ] || log "$scen on $server: exit $rc (incomplete run; see missing/timed_out/error)"
    echo "$line" | jq -c --arg s "$server" --arg n "$scen" '. + {server: $s, name: $n}' >>"$JSONL"
    kill -0 "$alive" 2>/dev/null || log "$server (pid $alive) died during $scen"
}

fresh_herald() {
    [ "$HERALD_USED" = 1 ] || return 0
    log "restarting herald for a fresh RSS baseline"
    stop_pid "$HERALD_PID"
    HERALD_PID=""
    start_herald
    HERALD_USED=0
}

other_of() { case $1 in mqidle | mqhs | mqtt) echo mosquitto ;; *) echo nchan ;; esac; }

for scen in $SCENARIOS; do
    list=(herald "$(other_of "$scen")")
    case $scen in idle | mqidle | sse | ws | mqtt) [ "$PLAIN" = 1 ] && list+=(herald-plain) ;; esac
    for s in "${list[@]}"; do
        # idle: on a fresh herald (restarted before the TLS run and before the plain one)
        case $scen in idle | mqidle) [ "$s" = mosquitto ] || [ "$s" = nchan ] || fresh_herald ;; esac
        case $scen in
        idle)   run_one "$s" idle --idle-conns "$IDLE_CONNS" ;;
        mqidle) run_one "$s" mqidle --mode mqtt --idle-conns "$IDLE_CONNS" ;;
        hs)     run_one "$s" hs --idle-conns "$HS_CONNS" --tls-handshake-only --ramp-batch "$HS_INFLIGHT" ;;
        mqhs)   run_one "$s" mqhs --mode mqtt --idle-conns "$HS_CONNS" --tls-handshake-only --ramp-batch "$HS_INFLIGHT" ;;
        sse)    run_one "$s" sse --subs "$SUBS" --messages "$MSGS" --rate 0 --window 1 ;;
        ws)     run_one "$s" ws --mode ws --subs "$SUBS" --messages "$MSGS" --rate 0 --window 1 ;;
        mqtt)   run_one "$s" mqtt --mode mqtt --pub-via mqtt --qos 0 --subs "$SUBS_MQTT" --messages "$MSGS_MQTT" \
                    --rate 0 --window 1 ;;
        *)      log "unknown scenario $scen" ;;
        esac
    done
done

# ---- report ----

describe() {
    case $1 in
    idle)   echo "idle: $IDLE_CONNS idle SSE subscribers over TLS on one channel (fresh servers); connect = TCP + TLS + subscribe" ;;
    mqidle) echo "mqidle: $IDLE_CONNS idle MQTT subscribers over TLS (QoS 0, one topic; fresh servers); connect = TCP + TLS + CONNECT + SUBSCRIBE" ;;
    hs)     echo "hs: $HS_CONNS TLS handshakes on the https listeners, $HS_INFLIGHT in flight, nothing sent after them" ;;
    mqhs)   echo "mqhs: the same on the MQTT TLS listeners" ;;
    sse)    echo "sse: SSE fan-out over TLS, $SUBS subscribers, $MSGS msgs flat out (window 1), published over HTTPS" ;;
    ws)     echo "ws: WebSocket fan-out over TLS, $SUBS subscribers, $MSGS msgs flat out (window 1), published over HTTPS" ;;
    mqtt)   echo "mqtt: MQTT QoS 0 fan-out over TLS, $SUBS_MQTT subscribers, $MSGS_MQTT msgs flat out (window 1), published over MQTT/TLS" ;;
    esac
}

{
    echo "herald TLS vs nginx+nchan TLS and Mosquitto TLS - $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "herald: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (single thread, store lmdb), $("$ROOT/build/herald" --version 2>/dev/null | head -n1)"
    echo "nchan:  $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?') on $(nginx -v 2>&1 | sed 's/.*: //'), worker_processes 1, measured master + worker"
    echo "mosquitto: $("$MOSQUITTO" -h 2>/dev/null | head -n1 | sed 's/^mosquitto version //') (single thread), persistence false"
    echo "OpenSSL $(openssl version | awk '{print $2}'); negotiated: $(jq -r 'select(.tls_version) | "\(.server) \(.tls_version) \(.tls_cipher)"' "$JSONL" | sort -u | paste -sd ',' -)"
    echo "certificate: ECDSA P-256 (throwaway CA), verified by the client; every handshake a full one (no resumption)"
    echo "machine: $(nproc) shared cores; the load generator (which does as much TLS work as the server) and"
    echo "the server share them - compare the ratios, measured in the same run. payload $SIZE bytes."
    echo
    printf '%-7s %-24s %11s %11s %-10s %6s %11s %9s\n' scen metric herald other other h/o "plain" tls/plain
    fanout="deliveries_per_s lat_p50_ms lat_p99_ms lat_max_ms cpu_us_per_delivery missing duplicates connects_per_s connect_cpu_us_per_conn"
    for scen in $SCENARIOS; do
        o=$(other_of "$scen")
        case $scen in
        idle | mqidle) metrics="rss_per_conn_bytes connected connects_per_s connect_cpu_us_per_conn" ;;
        hs | mqhs) metrics="connects_per_s connect_cpu_us_per_conn connected connect_ms" ;;
        *) metrics=$fanout ;;
        esac
        for m in $metrics; do
            h=$(get herald "$scen" "$m"); n=$(get "$o" "$scen" "$m"); p=$(get herald-plain "$scen" "$m")
            [ -z "$h$n" ] && continue
            printf '%-7s %-24s %11s %11s %-10s %6s %11s %9s\n' "$scen" "$m" "$(fmt "$h")" "$(fmt "$n")" "$o" \
                "$(ratio "$h" "$n")" "$(fmt "$p")" "$(ratio "$h" "$p")"
        done
    done
    echo
    for scen in $SCENARIOS; do describe "$scen"; done
    echo "plain: herald's plain listeners (http, mqtt) in the same run; tls/plain = herald TLS / herald plain."
    echo "h/o < 1 is better for latency, CPU and RSS; > 1 is better for deliveries_per_s and connects_per_s."
    echo "cpu_us_per_delivery / connect_cpu_us_per_conn: server CPU (utime+stime; nginx master + worker) per"
    echo "delivery, per connection (hs, mqhs: per handshake). rss_per_conn_bytes: server RSS growth / connections."
    echo "errors: $(jq -r 'select((.error // "") != "") | "\(.server) \(.name): \(.error)"' "$JSONL" | paste -sd ';' - | sed 's/^$/none/')"
    echo "raw results: $JSONL"
} | tee "$TABLE"
