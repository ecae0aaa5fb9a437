# bench/lib.sh - shell helpers shared by the comparison scripts (sourced, not run): logging,
# stopping only the PIDs we started, the whole-script time budget, free loopback ports.

log() { echo "[bench] $*" >&2; }

stop_pid() { # stop_pid PID: TERM, wait up to 5 s, then KILL; only a PID we started
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Hard bound on the whole script: after BUDGET_S seconds the watchdog TERMs the script, whose
# EXIT trap stops the servers. Sets WATCHDOG_PID.
start_watchdog() {
    (
        trap 'kill "$sp" 2>/dev/null; exit 0' TERM
        sleep "$BUDGET_S" & sp=$!
        wait "$sp"
        echo "[bench] time budget of ${BUDGET_S}s exhausted, stopping" >&2
        kill -TERM $$
    ) &
    WATCHDOG_PID=$!
}

budget_ok() { # budget_ok SECONDS: true when SECONDS more still fit in BUDGET_S since START
    [ $(( $(date +%s) - START + $1 )) -le "$BUDGET_S" ]
}

stop_watchdog() {
    [ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null || true
    [ -n "$WATCHDOG_PID" ] && wait "$WATCHDOG_PID" 2>/dev/null || true
}

free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000))   # below the ephemeral range (32768+)
        if [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ]; then echo "$p"; return 0; fi
    done
    return 1
}

wait_listen() { # wait_listen PORT PID: up to 10 s for a listener on PORT while PID lives
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || return 1
        [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ] && return 0
        sleep 0.1
    done
    return 1
}

# Result helpers over the run's JSON lines ($JSONL, one object per run tagged .server and .name).
get() { # get SERVER SCENARIO FIELD
    jq -r --arg s "$1" --arg n "$2" --arg f "$3" \
        'select(.server == $s and .name == $n) | .[$f] // empty' "$JSONL" | head -n1
}
fmt() { [ -z "$1" ] && { echo "-"; return; }; awk -v v="$1" 'BEGIN { if (v < 0) print "n/a"; else if (v == int(v)) printf "%d", v; else if (v >= 1000) printf "%.0f", v; else if (v >= 10) printf "%.1f", v; else printf "%.3f", v }'; }
ratio() { [ -z "$1" ] || [ -z "$2" ] && { echo "-"; return; }; awk -v a="$1" -v b="$2" 'BEGIN { if (a < 0 || b <= 0) print "-"; else printf "%.2f", a / b }'; }

nchan_main_conf() { # nchan_main_conf DIR: nginx's main-context lines for nchan ($NCHAN_SO), files under DIR;
    # one worker to match herald's single thread
    cat <<MAIN_CONF
load_module $NCHAN_SO;
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 19500; use epoll; }
MAIN_CONF
}

nginx_temp_paths() { # nginx_temp_paths DIR: the http-context temp paths of nginx under DIR
    local t
    for t in client_body:body proxy:proxy fastcgi:fastcgi uwsgi:uwsgi scgi:scgi; do
        echo "    ${t%%:*}_temp_path $1/${t#*:};"
    done
}
