#!/usr/bin/env bash
# bench/users.sh - issue 13's benchmark (make bench-users): herald's users against nginx+nchan,
# side by side in one run. See bench/README.md, "Users: herald vs nchan (users.sh)".
#
#   part 1, one channel per user: USERS (10,000) SSE subscribers, each the only subscriber of its
#     user's channel; the backend publishes to each user in turn (round-robin over the channels):
#       rate  RATE_MSGS (20,000) messages at RATE (2,000) per second
#       flat  FLAT_MSGS (40,000) messages as fast as they are acknowledged (WINDOW in flight over
#             PUB_CONNS keep-alive connections)
#   part 2, read state: READ_USERS (5,000) other users (r-N) with DEVICES (3) SSE connections each
#       feed  the backend publishes FEED_MSGS (30,000) messages to each user in turn, flat out:
#             every message reaches the user's 3 devices (for nchan this is how an application
#             pushes its own unread count: it keeps the count and publishes it)
#       read  herald only: each user's device marks read (POST /read/user/r-N {"id":...}, with the
#             user's token), READS (30,000) reads in turn over the users, flat out; each read changes
#             the user's count and herald pushes an SSE `unread` event to the user's 3 devices. Its
#             figures are compared with nchan's `feed` (the push an nchan application must make).
#             Before it, one message goes to every part-2 user, and a probe checks that this herald
#             pushes unread events at all; if not, the run measures reads only and says so.
# Each scenario runs on both servers, ROUNDS times (every other round nchan first); every subscriber
# checks that it got each message (read: each read's event) of its user exactly once.
#
# herald runs as users run it: `build/herald serve` with the default store (LMDB in a fresh data
# directory, durability = interval) and access control on (an HS256 secret, the permissions line of
# the README, an API key for the backend); every subscriber presents its own user's JWT (minted with
# node's crypto) and subscribes to its personal feed /sub/@me (user_channel user/{sub}). nginx+nchan
# (Debian's libnginx-mod-nchan, installed when missing) runs one worker with a pub location and an
# EventSource sub location per channel, and no auth at all (and, unlike its defaults, new
# subscribers start at the newest message, keep-alive connections are not closed after 1,000
# requests, and 1 GB of shared memory holds the messages). Both are measured by PID from /proc
# (nginx: master + worker summed). The load generator is `herald bench` (bench/loadgen.c).
# Writes bench/results/users-<stamp>.{jsonl,txt}. Every process it starts is stopped by PID; the
# whole script is bounded by BUDGET_S.
#
# Environment knobs (defaults in brackets):
#   USERS [10000]  RATE [2000]  RATE_MSGS [20000]  FLAT_MSGS [40000]  WINDOW [16]  PUB_CONNS [4]
#   READ_USERS [5000]  DEVICES [3]  FEED_MSGS [30000]  READS [30000]  SIZE [64]
#   SCENARIOS ["rate flat feed read"]  ROUNDS [2]  HERALD_SKIP=1 / NCHAN_SKIP=1  RUN_TIMEOUT_S [60]
#   BUDGET_S [420]
#   HERALD_BIN [build/herald] the server to measure (the load generator is always build/herald, made
#   first)  PERF=1: record a profile of herald in each run (perf; slows herald: not for the ratios)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh

USERS=${USERS:-10000}
RATE=${RATE:-2000}
RATE_MSGS=${RATE_MSGS:-20000}
FLAT_MSGS=${FLAT_MSGS:-40000}
WINDOW=${WINDOW:-16}
PUB_CONNS=${PUB_CONNS:-4}
READ_USERS=${READ_USERS:-5000}
DEVICES=${DEVICES:-3}
FEED_MSGS=${FEED_MSGS:-30000}
READS=${READS:-30000}
SIZE=${SIZE:-64}
SCENARIOS=${SCENARIOS:-rate flat feed read}
ROUNDS=${ROUNDS:-2}
PERF=${PERF:-0}
HERALD_SKIP=${HERALD_SKIP:-0}
NCHAN_SKIP=${NCHAN_SKIP:-0}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-60}
BUDGET_S=${BUDGET_S:-420}
NCHAN_SO=${NCHAN_SO:-/usr/share/nginx/modules/ngx_nchan_module.so}
START=$(date +%s)

for t in jq node curl; do command -v $t >/dev/null || { log "$t is needed (apt-get install $t)"; exit 1; }; done
if [ "$NCHAN_SKIP" != 1 ] && { ! command -v nginx >/dev/null || [ ! -f "$NCHAN_SO" ]; }; then
    log "installing nginx-light and libnginx-mod-nchan (apt-get)"
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light libnginx-mod-nchan >&2 ||
            { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light libnginx-mod-nchan >&2; }
    else
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light libnginx-mod-nchan >&2
    fi
    [ -f "$NCHAN_SO" ] || { log "nchan module not found at $NCHAN_SO"; exit 1; }
fi
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null; then log "PERF=1 needs perf (apt-get install linux-perf); no profiles"; PERF=0; fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
CONNS_MAX=$((USERS > READ_USERS * DEVICES ? USERS : READ_USERS * DEVICES))
[ "$(ulimit -n)" -ge $((CONNS_MAX + PUB_CONNS + 100)) ] ||
    { log "open-file limit $(ulimit -n) is too low for $CONNS_MAX connections in one load generator"; exit 1; }
make -s build/herald >&2 # the load generator (`herald bench`), and the server unless HERALD_BIN
HERALD_BIN=${HERALD_BIN:-build/herald}
[ -x "$HERALD_BIN" ] || { log "no herald binary at $HERALD_BIN"; exit 1; }

TMP=$(mktemp -d /tmp/herald-users.XXXXXX)
cp "$HERALD_BIN" "$TMP/herald" # copies: others may rebuild build/herald during the run
cp build/herald "$TMP/loadgen"
HERALD="$TMP/herald"
LOADGEN="$TMP/loadgen"
HERALD_PID="" NGINX_PID="" NGINX_WORKER="" WATCHDOG_PID=""
cleanup() {
    local rc=$?
    stop_pid "$HERALD_PID"
    stop_pid "$NGINX_PID"
    stop_watchdog
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
start_watchdog

mkdir -p bench/results
STAMP=$(date +%Y%m%d-%H%M%S)
JSONL=bench/results/users-$STAMP.jsonl
TABLE=bench/results/users-$STAMP.txt
: >"$JSONL"

# ---- credentials: an HS256 secret, an API key, a JWT per user (u-0.. for part 1, r-0.. for part 2) ----
cat >"$TMP/mint.js" <<'EOF'
const crypto = require('crypto'), fs = require('fs'), path = require('path');
const [dir, users, readUsers] = process.argv.slice(2);
const now = Math.floor(Date.now() / 1000);
const b64u = (b) => Buffer.from(b).toString('base64url');
const secret = crypto.randomBytes(32).toString('hex');
fs.writeFileSync(path.join(dir, 'secret'), secret + '\n');
fs.writeFileSync(path.join(dir, 'api.key'), crypto.randomBytes(24).toString('hex') + '\n');
const head = b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
for (const [file, prefix, n] of [['users.tokens', 'u-', +users], ['read.tokens', 'r-', +readUsers]]) {
    const out = [];
    for (let i = 0; i < n; i++) {
        const d = head + '.' + b64u(JSON.stringify({ sub: prefix + i, exp: now + 3600, iat: now }));
        out.push(d + '.' + crypto.createHmac('sha256', secret).update(d).digest('base64url'));
    }
    fs.writeFileSync(path.join(dir, file), out.join('\n') + '\n');
}
EOF
log "minting $USERS + $READ_USERS HS256 tokens ..."
node "$TMP/mint.js" "$TMP" "$USERS" "$READ_USERS"
API_KEY=$(head -n1 "$TMP/api.key")
printf 'user subscribe user/{sub}/#\n' >"$TMP/rules" # README's access-control set-up

# ---- servers ----
HERALD_PORT="" NCHAN_PORT=""
start_herald() {
    HERALD_PORT=$(free_port)
    "$HERALD" serve --http "127.0.0.1:$HERALD_PORT" --mqtt "" --data_dir "$TMP/herald-data" \
        --max_connections 20000 --token_hmac_secret_file "$TMP/secret" --permissions_file "$TMP/rules" \
        --api_keys_file "$TMP/api.key" >"$TMP/herald.log" 2>&1 &
    HERALD_PID=$!
    wait_listen "$HERALD_PORT" "$HERALD_PID" || { log "herald did not start:"; cat "$TMP/herald.log" >&2; exit 1; }
    log "herald pid $HERALD_PID on 127.0.0.1:$HERALD_PORT (LMDB in $TMP/herald-data, access control on)"
}

start_nchan() {
    NCHAN_PORT=$(free_port)
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<NGINX_CONF
# generated by bench/users.sh; one worker to match herald's single thread; no auth
$(nchan_main_conf "$TMP/nginx")
http {
    access_log off;
$(nginx_temp_paths "$TMP/nginx")
    nchan_message_buffer_length 1000;   # herald's history_messages
    nchan_message_timeout 1h;           # herald's history_age
    keepalive_requests 1000000;         # herald has no such limit (nginx's default closes after 1,000)
    nchan_shared_memory_size 1024m;     # herald's max_history_memory; the default 128m fills up (HTTP 500)
    server {
        listen 127.0.0.1:$NCHAN_PORT backlog=4096;
        location ~ ^/pub/(.+)\$ { nchan_publisher; nchan_channel_id \$1; }
        # a new subscriber gets what is published from now on, as herald's /sub/@me without last_id
        # (nchan's default, oldest, would replay the channel's buffer from the previous scenario)
        location ~ ^/sub/(.+)\$ {
            nchan_subscriber eventsource;
            nchan_channel_id \$1;
            nchan_subscriber_first_message newest;
        }
        location / { return 200 "ok\n"; }
    }
}
NGINX_CONF
    nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx/" >"$TMP/nginx/stdout.log" 2>&1 &
    NGINX_PID=$!
    wait_listen "$NCHAN_PORT" "$NGINX_PID" ||
        { log "nginx did not start:"; cat "$TMP/nginx/error.log" "$TMP/nginx/stdout.log" >&2; exit 1; }
    for _ in $(seq 50); do NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -n1 || true); [ -n "$NGINX_WORKER" ] && break; sleep 0.1; done
    [ -n "$NGINX_WORKER" ] || { log "no nginx worker process"; exit 1; }
    log "nginx+nchan master $NGINX_PID worker $NGINX_WORKER on 127.0.0.1:$NCHAN_PORT (no auth)"
}

[ "$HERALD_SKIP" != 1 ] && start_herald
[ "$NCHAN_SKIP" != 1 ] && start_nchan

# unread_pushed: does this herald push `unread` events? (an SSE subscriber on /sub/@me, then a read)
UNREAD_EVENTS=0
unread_pushed() {
    local tok
    tok=$(head -n1 "$TMP/read.tokens")
    curl -s -N --max-time 2 -H 'Accept: text/event-stream' \
        "http://127.0.0.1:$HERALD_PORT/sub/@me?token=$tok" >"$TMP/probe.sse" 2>/dev/null &
    local cp=$!
    sleep 0.5
    curl -s -o /dev/null --max-time 2 -H "Authorization: Bearer $tok" -d '{"id":"0"}' \
        "http://127.0.0.1:$HERALD_PORT/read/user/r-0" || true
    wait "$cp" 2>/dev/null || true
    grep -q '^event: unread' "$TMP/probe.sse"
}

# prefill_read_users: one message on each part-2 user's channel, so that every read changes the
# user's count (POST /publish with 1,000 users per request).
prefill_read_users() {
    local i=0 n
    while [ "$i" -lt "$READ_USERS" ]; do
        n=$((READ_USERS - i < 1000 ? READ_USERS - i : 1000))
        seq "$i" $((i + n - 1)) | jq -R -s -c '{users: (split("\n") | map(select(. != "") | "r-" + .)), data: "prefill"}' \
            >"$TMP/prefill.json"
        curl -s -f -o /dev/null --max-time 30 -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' \
            --data-binary @"$TMP/prefill.json" "http://127.0.0.1:$HERALD_PORT/publish" ||
            { log "prefill of the read users failed"; return 1; }
        i=$((i + n))
    done
}

# run_one SERVER SCENARIO ARGS...: one load-generator run, its JSON line tagged and appended
run_one() {
    local server=$1 scen=$2 url pids style rc=0 line
    shift 2
    if [ "$server" = herald ]; then
        url=http://127.0.0.1:$HERALD_PORT pids=$HERALD_PID style=herald
    else
        url=http://127.0.0.1:$NCHAN_PORT pids=$NGINX_PID,$NGINX_WORKER style=nchan
    fi
    budget_ok $((RUN_TIMEOUT_S + 10)) || { log "skipping $scen on $server: not enough time left in BUDGET_S"; return 0; }
    kill -0 "${pids%%,*}" 2>/dev/null || { log "$server is not running; skipping $scen"; return 0; }
    sleep 1 # let the server finish closing the previous run's connections
    log "$scen on $server (round $round) ..."
    local perf_pid="" perf_data="$TMP/perf-$scen-$round.data"
    if [ "$PERF" = 1 ] && [ "$server" = herald ]; then
        perf record -F 499 -g -p "$HERALD_PID" -o "$perf_data" >/dev/null 2>"$TMP/perf.log" &
        perf_pid=$!
    fi
    line=$(timeout $((RUN_TIMEOUT_S + 30)) "$LOADGEN" bench --url "$url" --pub-path-style "$style" --server-pid "$pids" \
        --timeout-s "$RUN_TIMEOUT_S" --size "$SIZE" --json --quiet "$@") || rc=$?
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        perf report -i "$perf_data" --stdio --no-children --percent-limit 0.7 -g none 2>/dev/null |
            grep -v '^$' | head -n 60 >"bench/results/users-$STAMP-perf-$scen-$round.txt" || true
        log "profile: bench/results/users-$STAMP-perf-$scen-$round.txt"
    fi
    [ -n "$line" ] || { log "$scen on $server produced no result (exit $rc)"; return 0; }
    [ $rc -eq 0 ] || log "$scen on $server: exit $rc (incomplete: see missing / error)"
    echo "$line" | jq -c --arg s "$server" --arg n "$scen" --argjson r "$round" --argjson rc "$rc" \
        '. + {server: $s, name: $n, round: $r, exit: $rc}' >>"$JSONL"
}

# scenario_args SERVER SCENARIO: the load generator's arguments
scenario_args() {
    local server=$1 scen=$2 auth=()
    case $scen in
    rate | flat)
        if [ "$server" = herald ]; then
            auth=(--sub-path @me --tokens-file "$TMP/users.tokens" --pub-key "$API_KEY")
        fi
        printf '%s\n' --channel user/u --channels "$USERS" --subs "$USERS" --pub-conns "$PUB_CONNS" "${auth[@]}"
        if [ "$scen" = rate ]; then printf '%s\n' --messages "$RATE_MSGS" --rate "$RATE"
        else printf '%s\n' --messages "$FLAT_MSGS" --rate 0 --window "$WINDOW"; fi
        ;;
    feed | read)
        if [ "$server" = herald ]; then
            auth=(--sub-path @me --tokens-file "$TMP/read.tokens" --pub-key "$API_KEY")
        fi
        printf '%s\n' --channel user/r --channels "$READ_USERS" --subs $((READ_USERS * DEVICES)) \
            --pub-conns "$PUB_CONNS" --rate 0 --window "$WINDOW" "${auth[@]}"
        if [ "$scen" = feed ]; then printf '%s\n' --messages "$FEED_MSGS"
        else
            printf '%s\n' --messages "$READS" --pub-op read --drain-ms 3000
            if [ "$UNREAD_EVENTS" = 1 ]; then printf '%s\n' --read-events; fi
        fi
        ;;
    esac
}

servers=()
[ "$HERALD_SKIP" != 1 ] && servers+=(herald)
[ "$NCHAN_SKIP" != 1 ] && servers+=(nchan)
for round in $(seq "$ROUNDS"); do
    order=("${servers[@]}")
    # every other round the other server goes first, so that neither always meets the machine's
    # state the other left (caches, a noisy neighbour that just started)
    [ $((round % 2)) = 0 ] && [ ${#servers[@]} = 2 ] && order=("${servers[1]}" "${servers[0]}")
    for scen in $SCENARIOS; do
        case $scen in rate | flat | feed | read) ;; *) log "unknown scenario $scen"; continue ;; esac
        for s in "${order[@]}"; do
            if [ "$scen" = read ]; then
                [ "$s" = herald ] || continue # nchan keeps no read state: compared with its feed run
                prefill_read_users || continue
                if unread_pushed; then UNREAD_EVENTS=1; else UNREAD_EVENTS=0; fi
                log "this herald $([ $UNREAD_EVENTS = 1 ] && echo pushes || echo does not push) unread events"
            fi
            mapfile -t args < <(scenario_args "$s" "$scen")
            run_one "$s" "$scen" "${args[@]}"
        done
    done
done

# memory at the end: VmRSS split into anonymous memory, file pages (herald: the LMDB map) and shared
# memory (nchan: its message store), per process
mem_line() { # mem_line NAME PID
    awk -v n="$1" '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } /^RssShmem:/ { s = $2 }
        END { printf "%-13s VmRSS %6.1f MB (anon %.1f, file %.1f, shmem %.1f)\n", n, r / 1024, a / 1024, f / 1024, s / 1024 }' \
        "/proc/$2/status" 2>/dev/null || true
}
MEM_END=()
[ -n "$HERALD_PID" ] && MEM_END+=("$(mem_line herald "$HERALD_PID")")
[ -n "$NGINX_PID" ] && MEM_END+=("$(mem_line "nginx master" "$NGINX_PID")" "$(mem_line "nginx worker" "$NGINX_WORKER")")

# ---- report ----
[ -s "$JSONL" ] || { log "no results"; exit 1; }
describe() {
    case $1 in
    rate) echo "rate: $USERS users, one channel and one SSE subscriber each; $RATE_MSGS messages at $RATE/s, round-robin over the users" ;;
    flat) echo "flat: the same $USERS users; $FLAT_MSGS messages as fast as acknowledged ($WINDOW in flight over $PUB_CONNS connections)" ;;
    feed) echo "feed: $READ_USERS users x $DEVICES SSE devices; $FEED_MSGS messages flat out ($WINDOW in flight over $PUB_CONNS connections), round-robin over the users" ;;
    read) echo "read: herald, the feed's users and devices; $READS POST /read/user/r-N by the users' tokens flat out ($WINDOW in flight), each changing the count; h/n against nchan's feed of the round" ;;
    esac
}
# row SERVER SCENARIO ROUND: one table row from the JSON lines
COLS='deliveries_per_s pub_per_s lat_p50_ms lat_p99_ms lat_max_ms cpu_us_per_delivery cpu_us_per_publish ack_p50_ms rss_end_kb'
row() {
    jq -r --arg s "$1" --arg n "$2" --argjson r "$3" --arg cols "$COLS" '
        select(.server == $s and .name == $n and .round == $r)
        | . as $o | [($cols | split(" ")[]) as $c | $o[$c]] + [.missing, .duplicates, .bad_events, .unread_events]
        | @tsv' "$JSONL" | head -n1
}
{
    echo "herald vs nginx+nchan: users (issue 13) - $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    dirty=$(git status --porcelain -- src 2>/dev/null | wc -l)
    if [ "$HERALD_BIN" = build/herald ]; then
        hv="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$([ "$dirty" -gt 0 ] && echo " + $dirty uncommitted files in src/")"
    else
        hv="$HERALD_BIN (HERALD_BIN)"
    fi
    echo "herald: $hv (single thread), LMDB store (durability = interval), access"
    echo "        control on: a JWT per user (HS256), /sub/@me; the backend publishes with an API key"
    echo "nchan:  $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?') on $(nginx -v 2>&1 | sed 's/.*: //'), worker_processes 1, no auth; CPU and RSS = master + worker"
    echo "machine: $(nproc) shared cores (load average now $(cut -d' ' -f1-3 /proc/loadavg)), at most $(ulimit -Hn) open files per process; the"
    echo "load generator shares the cores with the servers: compare the ratios, measured in the same run."
    if [[ " $SCENARIOS " == *" read "* ]] && [ "$HERALD_SKIP" != 1 ]; then
        if [ "$UNREAD_EVENTS" = 1 ]; then echo "unread events: pushed by this herald; the read run counts them as its deliveries"
        else echo "unread events: NOT pushed by this herald (pending): the read run measures reads/s and CPU per read only"; fi
    fi
    echo
    hfmt='%-5s %2s %-6s %9s %8s %7s %7s %7s %8s %8s %7s %7s %7s %5s %5s %8s\n'
    printf "$hfmt" scen r server deliv/s pub/s p50_ms p99_ms max_ms cpu/del cpu/pub ack_p50 rss_MB missing dups bad unread_ev
    for scen in $SCENARIOS; do
        for round in $(seq "$ROUNDS"); do
            nscen=$scen
            [ "$scen" = read ] && nscen=feed
            H=$(row herald "$scen" "$round") N=$(row nchan "$nscen" "$round")
            for who in herald nchan; do
                line=$H; [ $who = nchan ] && line=$N
                [ -n "$line" ] || continue
                [ "$scen" = read ] && [ $who = nchan ] && continue
                IFS=$'\t' read -r -a v <<<"$line"
                printf "$hfmt" "$scen" "$round" "$who" "$(fmt "${v[0]}")" "$(fmt "${v[1]}")" "$(fmt "${v[2]}")" \
                    "$(fmt "${v[3]}")" "$(fmt "${v[4]}")" "$(fmt "${v[5]}")" "$(fmt "${v[6]}")" "$(fmt "${v[7]}")" \
                    "$(fmt "$(awk -v k="${v[8]}" 'BEGIN { printf "%.1f", k / 1024 }')")" "${v[9]}" "${v[10]}" "${v[11]}" "${v[12]}"
            done
            if [ -n "$H" ] && [ -n "$N" ]; then
                IFS=$'\t' read -r -a h <<<"$H"
                IFS=$'\t' read -r -a n <<<"$N"
                rr=()
                for k in 0 1 2 3 4 5 6 7 8; do rr+=("$(ratio "${h[$k]}" "${n[$k]}")"); done
                printf "$hfmt" "$scen" "$round" "h/n" "${rr[@]}" "" "" "" ""
                echo "$scen ${rr[0]} ${rr[2]} ${rr[3]} ${rr[6]} ${rr[8]}" >>"$TMP/ratios"
            fi
        done
    done
    if [ -s "$TMP/ratios" ]; then
        echo
        echo "herald/nchan over the $ROUNDS round(s), lowest..highest (read: against nchan's feed):"
        printf '%-5s %13s %13s %13s %13s %13s\n' scen deliv/s p50_ms p99_ms cpu/pub rss_end
        awk '{ s = $1; if (!(s in seen)) { seen[s] = 1; order[++n] = s }
               for (k = 2; k <= 6; k++) { if ($k == "-") continue; key = s SUBSEP k
                   if (!(key in lo) || $k + 0 < lo[key]) lo[key] = $k + 0; if (!(key in hi) || $k + 0 > hi[key]) hi[key] = $k + 0 } }
             END { for (i = 1; i <= n; i++) { s = order[i]; printf "%-5s", s
                   for (k = 2; k <= 6; k++) { key = s SUBSEP k; if (key in lo) printf " %13s", sprintf("%.2f..%.2f", lo[key], hi[key]); else printf " %13s", "-" }
                   printf "\n" } }' "$TMP/ratios"
    fi
    echo
    r1=$(jq -r 'select(.name == "rate" and .round == 1)
        | "\(.server) \(.rss_connected_kb) \(.rss_per_conn_bytes) \(.connect_ms) \(.connect_cpu_us_per_conn)"' "$JSONL")
    [ -n "$r1" ] && echo "$r1" | while read -r s kb per cms cpu; do
        printf '%-6s %s users connected (round 1 rate, fresh server): RSS %.1f MB, %s bytes per connection;\n' "$s" "$USERS" \
            "$(awk -v k="$kb" 'BEGIN { print k / 1024 }')" "$per"
        printf '       connecting them took %.0f ms and %.1f us of server CPU per connection\n' "$cms" "$cpu"
    done
    echo "memory at the end (the history of every channel included: both keep 1,000 messages / 1 h per channel;"
    echo "herald's file pages are its LMDB map):"
    for l in "${MEM_END[@]}"; do echo "  $l"; done
    echo
    for scen in $SCENARIOS; do describe "$scen"; done
    echo "deliv/s: deliveries (read: unread events matched to their read) per second; pub/s: publishes (read: reads)"
    echo "answered per second; latency = delivery - scheduled send (read: event - read sent); cpu/del, cpu/pub: server"
    echo "CPU us per delivery and per publish (read); ack_p50: publish (read) answer latency; rss_MB: at the end of"
    echo "the run; unread_ev: every SSE unread event herald sent (one per subscription at subscribe, and one per"
    echo "message on the personal channel). h/n < 1 is better for latency, CPU and RSS; > 1 for deliv/s and pub/s."
    lost=$(jq -s '[.[] | (.missing // 0) + (.duplicates // 0) + (.bad_events // 0) + (.pub_err // 0) + (if .timed_out then 1 else 0 end)] | add' "$JSONL")
    echo "verdict: $([ "$lost" = 0 ] && echo "no loss: every message (and read event) delivered exactly once, no failed publish or read" || echo "$lost missing, duplicated, unparsed, failed or timed out (see $JSONL)")"
    echo "raw results: $JSONL"
} | tee "$TABLE"
