# shellcheck shell=bash
# Background processes of the interop suite: free loopback ports, start with a log file and a
# hard time limit, readiness waits, and a cleanup that stops exactly the processes started
# here. Sourced by run.sh, which sets LOGS and calls `trap stop_all EXIT`.

# No server outlives the suite, even when the script itself is killed without its trap.
PROCESS_TIME_LIMIT=${PROCESS_TIME_LIMIT:-900}
# How long a server may take to become ready.
READY_TIMEOUT=${READY_TIMEOUT:-60}

STARTED_PIDS=()

# free_port: a TCP port on 127.0.0.1 nobody listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start NAME CMD...: runs CMD in the background in its own process group (so its children
# stop with it), output to $LOGS/NAME.log. Sets LAST_PID.
start() {
    local name=$1
    shift
    setsid timeout --kill-after=5 "$PROCESS_TIME_LIMIT" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
    LAST_PID=$!
    STARTED_PIDS+=("$LAST_PID")
}

# show_log NAME: the end of a process's log, for a failure report.
show_log() {
    echo "---- last lines of $LOGS/$1.log ----" >&2
    tail -n 30 "$LOGS/$1.log" >&2 || true
    echo "----" >&2
}

# wait_http NAME PID URL [STATUS]: polls URL until it answers (with STATUS when given).
# Fails early when the process exits.
wait_http() {
    local name=$1 pid=$2 url=$3 want=${4:-} deadline code
    deadline=$((SECONDS + READY_TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "interop: $name exited before it was ready" >&2
            show_log "$name"
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        if [ "$code" != 000 ] && { [ -z "$want" ] || [ "$code" = "$want" ]; }; then
            return 0
        fi
        sleep 0.2
    done
    echo "interop: $name not ready at $url after ${READY_TIMEOUT}s" >&2
    show_log "$name"
    return 1
}

# stop_all: SIGTERM to every process group started here, SIGKILL to what remains after 10 s.
stop_all() {
    local pid waited=0
    [ "${#STARTED_PIDS[@]}" -eq 0 ] && return 0
    for pid in "${STARTED_PIDS[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${STARTED_PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 100 ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    STARTED_PIDS=()
}
