#!/usr/bin/env bash
# bench/auth.sh - what access control costs (docs/auth.md), in one run:
#   connect: CONNS (10,000) SSE subscribers to channel bench against a fresh herald each time:
#     open (no auth, the reference), hs256 / es256 / rs256 (a distinct token per subscriber:
#     every token is verified, the cache cannot help), hs256same (one token for all: the cache
#     path). Connections/s and server CPU per connection, with ratios against open.
#   fan: SSE fan-out to SUBS_FAN (1,000) subscribers, MSGS_FAN (2,000) messages flat out, auth off
#     against auth on (HS256 tokens + an API key for the publisher), FAN_ROUNDS (2) times in the
#     order off/on/off/on. Deliveries/s, latency, server CPU per delivery, on/off ratios.
# Tokens are minted with node's built-in crypto (a script written into the temp dir). Writes
# bench/results/auth-<stamp>.jsonl. See bench/README.md, "Access control (auth.sh)".
#
# Environment knobs (defaults in brackets):
#   CONNS [10000]  SUBS_FAN [1000]  MSGS_FAN [2000]  SIZE [64]  ROUNDS [2] connect rounds
#   FAN_ROUNDS [2]  SCENARIOS ["open hs256 es256 rs256 hs256same fan"]  RAMP [200] handshakes in
#   flight  RUN_TIMEOUT_S [90]  BUDGET_S [480]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

CONNS=${CONNS:-10000}
SUBS_FAN=${SUBS_FAN:-1000}
MSGS_FAN=${MSGS_FAN:-2000}
SIZE=${SIZE:-64}
ROUNDS=${ROUNDS:-2}
FAN_ROUNDS=${FAN_ROUNDS:-2}
SCENARIOS=${SCENARIOS:-open hs256 es256 rs256 hs256same fan}
RAMP=${RAMP:-200}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-90}
BUDGET_S=${BUDGET_S:-480}

command -v jq >/dev/null || { log "jq is needed (apt-get install jq)"; exit 1; }
command -v node >/dev/null || { log "node is needed to mint the tokens"; exit 1; }
command -v curl >/dev/null || { log "curl is needed to read herald's metrics"; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((CONNS + 100)) ] || { log "open-file limit $(ulimit -n) is too low for $CONNS connections"; exit 1; }
make -s build/herald >&2
START=$(date +%s)
TMP=$(mktemp -d /tmp/herald-auth-bench.XXXXXX)
mkdir -p bench/results
STAMP=$(date +%Y%m%d-%H%M%S)
JSONL=bench/results/auth-$STAMP.jsonl
HERALD_PID=""
cleanup() {
    stop_pid "$HERALD_PID"
    stop_watchdog
    rm -rf "$TMP"
}
trap cleanup EXIT
start_watchdog

# ---- credentials: N HS256, ES256 and RS256 tokens for users u0..u(N-1), keys, an API key ----
cat >"$TMP/mint.js" <<'EOF'
const crypto = require('crypto'), fs = require('fs'), path = require('path');
const [dir, count] = process.argv.slice(2);
const n = +count, now = Math.floor(Date.now() / 1000);
const b64u = (b) => Buffer.from(b).toString('base64url'); // no padding
const secret = crypto.randomBytes(32).toString('hex');     // 64 bytes (herald wants 32 or more)
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
fs.writeFileSync(path.join(dir, 'hs256.secret'), secret);
fs.writeFileSync(path.join(dir, 'api.key'), crypto.randomBytes(24).toString('hex') + '\n');
fs.writeFileSync(path.join(dir, 'es256.pem'), ec.publicKey.export({ type: 'spki', format: 'pem' }));
fs.writeFileSync(path.join(dir, 'rs256.pem'), rsa.publicKey.export({ type: 'spki', format: 'pem' }));
const sign = {
    HS256: (d) => crypto.createHmac('sha256', secret).update(d).digest(),
    ES256: (d) => crypto.sign('sha256', Buffer.from(d), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }), // raw R||S
    RS256: (d) => crypto.sign('sha256', Buffer.from(d), rsa.privateKey), // PKCS #1 v1.5
};
for (const alg of Object.keys(sign)) {
    const head = b64u(JSON.stringify({ alg, typ: 'JWT' }));
    const out = [];
    for (let i = 0; i < n; i++) {
        const d = head + '.' + b64u(JSON.stringify({ sub: 'u' + i, exp: now + 3600, iat: now }));
        out.push(d + '.' + b64u(sign[alg](d)));
    }
    fs.writeFileSync(path.join(dir, alg.toLowerCase() + '.tokens'), out.join('\n') + '\n');
}
EOF
log "minting $CONNS HS256, ES256 and RS256 tokens ..."
node "$TMP/mint.js" "$TMP" "$CONNS"
head -n1 "$TMP/hs256.tokens" >"$TMP/same.tokens"
echo "user subscribe bench" >"$TMP/permissions"
API_KEY=$(head -n1 "$TMP/api.key")
HS=(--token_hmac_secret_file "$TMP/hs256.secret" --permissions_file "$TMP/permissions")

# start_herald NAME FLAGS...: a fresh herald as users run it (default store: LMDB, in a new data
# directory), with room for the connections; sets PORT and HERALD_PID.
start_herald() {
    local name=$1
    shift
    PORT=$(free_port)
    rm -rf "$TMP/data"
    ./build/herald serve --http "127.0.0.1:$PORT" --mqtt "" --data_dir "$TMP/data" --max_connections 20000 \
        --metrics_public true "$@" >"$TMP/$name.log" 2>&1 &
    HERALD_PID=$!
    wait_listen "$PORT" "$HERALD_PID" || { log "herald ($name) did not start:"; cat "$TMP/$name.log" >&2; exit 1; }
}

metric() { # metric NAME: one value from herald's /metrics
    curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m { print $2; exit }'
}

# record NAME ROUND LINE: tag the loadgen's JSON line and the token metrics, append to $JSONL
record() {
    local ok hits
    ok=$(metric 'herald_auth_tokens_total{result="ok"}')
    hits=$(metric herald_auth_token_cache_hits_total)
    [ -n "$3" ] && echo "$3" | jq -c --arg s "$1" --arg n "$2" --arg ok "${ok:-0}" --arg h "${hits:-0}" \
        '. + {server: $s, name: $n, tokens_ok: ($ok | tonumber), cache_hits: ($h | tonumber)}' >>"$JSONL"
    return 0
}

run_connect() { # run_connect SCENARIO ROUND
    local s=$1 r=$2 lg=() hf=() line rc=0
    case $s in
    open) ;;
    hs256) hf=("${HS[@]}"); lg=(--tokens-file "$TMP/hs256.tokens") ;;
    hs256same) hf=("${HS[@]}"); lg=(--tokens-file "$TMP/same.tokens") ;;
    es256 | rs256) hf=(--token_public_key "$TMP/$s.pem" --permissions_file "$TMP/permissions")
        lg=(--tokens-file "$TMP/$s.tokens") ;;
    *) log "unknown scenario $s"; return 0 ;;
    esac
    start_herald "$s-$r" ${hf[@]+"${hf[@]}"}
    log "connect #$r $s: $CONNS SSE subscribers ..."
    line=$(timeout $((RUN_TIMEOUT_S + 30)) ./build/herald bench --url "http://127.0.0.1:$PORT" --channel bench \
        --idle-conns "$CONNS" --ramp-batch "$RAMP" --warmup-ms 0 --server-pid "$HERALD_PID" \
        --timeout-s "$RUN_TIMEOUT_S" --json --quiet ${lg[@]+"${lg[@]}"}) || rc=$?
    [ $rc -eq 0 ] || log "connect #$r $s: load generator exit $rc"
    record "$s" "c$r" "$line"
    stop_pid "$HERALD_PID"
    HERALD_PID=""
}

run_fan() { # run_fan off|on ROUND
    local a=$1 r=$2 lg=() hf=() line rc=0
    if [ "$a" = on ]; then
        hf=("${HS[@]}" --api_keys_file "$TMP/api.key")
        lg=(--tokens-file "$TMP/hs256.tokens" --pub-key "$API_KEY")
    fi
    start_herald "fan-$a-$r" ${hf[@]+"${hf[@]}"}
    log "fan-out #$r auth $a: $SUBS_FAN SSE subscribers, $MSGS_FAN messages flat out ..."
    line=$(timeout $((RUN_TIMEOUT_S + 30)) ./build/herald bench --url "http://127.0.0.1:$PORT" --channel bench \
        --subs "$SUBS_FAN" --messages "$MSGS_FAN" --rate 0 --window 1 --size "$SIZE" --server-pid "$HERALD_PID" \
        --timeout-s "$RUN_TIMEOUT_S" --json --quiet ${lg[@]+"${lg[@]}"}) || rc=$?
    [ $rc -eq 0 ] || log "fan-out #$r auth $a: load generator exit $rc"
    record "$a" "f$r" "$line"
    stop_pid "$HERALD_PID"
    HERALD_PID=""
}

CONNECT_S=""
for s in $SCENARIOS; do [ "$s" = fan ] || CONNECT_S="$CONNECT_S $s"; done
for r in $(seq "$ROUNDS"); do
    for s in $CONNECT_S; do
        if budget_ok 60; then run_connect "$s" "$r"; else log "connect #$r $s: skipped, no time left in BUDGET_S"; fi
    done
done
if [[ " $SCENARIOS " == *" fan "* ]]; then
    for r in $(seq "$FAN_ROUNDS"); do
        for a in off on; do
            if budget_ok $((RUN_TIMEOUT_S / 2)); then run_fan "$a" "$r"; else log "fan-out #$r $a: skipped, no time left"; fi
        done
    done
fi

# ---- tables ----
[ -s "$JSONL" ] || { log "no results"; exit 1; }
echo
if [ -n "$CONNECT_S" ]; then
    cfmt='%-10s %5s %6s %6s %10s %11s %15s %12s %10s %10s %9s %9s\n'
    printf "$cfmt" scenario round conns failed connect_ms conns_per_s cpu_us_per_conn rss_per_conn sig_checks \
        cache_hits ratio_c/s ratio_cpu
    for r in $(seq "$ROUNDS"); do
        base_cps=$(get open "c$r" connects_per_s)
        base_cpu=$(get open "c$r" connect_cpu_us_per_conn)
        for s in $CONNECT_S; do
            [ -n "$(get "$s" "c$r" connected)" ] || continue
            cps=$(get "$s" "c$r" connects_per_s)
            cpu=$(get "$s" "c$r" connect_cpu_us_per_conn)
            hits=$(get "$s" "c$r" cache_hits)
            printf "$cfmt" "$s" "$r" "$(get "$s" "c$r" connected)" "$(get "$s" "c$r" failed)" \
                "$(fmt "$(get "$s" "c$r" connect_ms)")" "$(fmt "$cps")" "$(fmt "$cpu")" \
                "$(fmt "$(get "$s" "c$r" rss_per_conn_bytes)")" $(($(get "$s" "c$r" tokens_ok) - hits)) "$hits" \
                "$(ratio "$cps" "$base_cps")" "$(ratio "$cpu" "$base_cpu")"
        done
    done
    echo "connect: $CONNS SSE subscribers, $RAMP handshakes in flight, one load generator process (open-file"
    echo "limit $(ulimit -n) per process here); connect_ms = first connect -> last subscriber ready; cpu = herald's"
    echo "CPU during that phase (/proc/PID/schedstat); sig_checks/cache_hits = tokens herald verified / found"
    echo "in its cache (herald_auth_tokens_total{ok} - herald_auth_token_cache_hits_total, and the latter); ratios"
    echo "against open in the same round (ratio_c/s above 1 = faster; ratio_cpu above 1 = more CPU)."
    echo
fi
if [[ " $SCENARIOS " == *" fan "* ]]; then
    ffmt='%-6s %5s %12s %8s %8s %14s %8s %9s %9s\n'
    printf "$ffmt" auth round deliv_per_s p50_ms p99_ms cpu_us_per_del missing ratio_dps ratio_cpu
    for r in $(seq "$FAN_ROUNDS"); do
        base_dps=$(get off "f$r" deliveries_per_s)
        base_cpu=$(get off "f$r" cpu_us_per_delivery)
        for a in off on; do
            [ -n "$(get "$a" "f$r" deliveries)" ] || continue
            dps=$(get "$a" "f$r" deliveries_per_s)
            cpu=$(get "$a" "f$r" cpu_us_per_delivery)
            printf "$ffmt" "$a" "$r" "$(fmt "$dps")" \
                "$(fmt "$(get "$a" "f$r" lat_p50_ms)")" "$(fmt "$(get "$a" "f$r" lat_p99_ms)")" "$(fmt "$cpu")" \
                "$(get "$a" "f$r" missing)" "$(ratio "$dps" "$base_dps")" "$(ratio "$cpu" "$base_cpu")"
        done
    done
    echo "fan-out: $SUBS_FAN SSE subscribers, $MSGS_FAN messages of $SIZE bytes flat out (window 1); on = HS256"
    echo "token per subscriber + API key on every publish; ratios = on/off of the same round (run off, on, off, on)."
fi
echo "raw results: $JSONL"
