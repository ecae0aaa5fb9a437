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
