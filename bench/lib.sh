# What the benchmark scripts share: a work directory whose processes are stopped and whose
# files are removed on exit, free loopback ports, and a process's CPU time. Sourced, not run.
#
#   source "$(dirname "$0")/lib.sh"
#   bench_work_dir conduit-bench-x      # sets $work; add background pids to "pids"
#   take_port port                      # sets $port
#   ticks=$(cpu_ticks "$pid")           # divide by $clock_ticks for seconds

pids=()
taken_ports=""
clock_ticks=$(getconf CLK_TCK)

# A fresh work directory in $work, removed on exit after every process in "pids" is stopped.
bench_work_dir() {
    work=$(mktemp -d -t "$1.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}

# Set variable $1 to a loopback port nothing listens on, never one given before in this
# script (it sets a variable rather than printing: a command substitution runs in a
# subshell, which would forget the ports already given).
take_port() {
    local attempt port
    for attempt in $(seq 1 100); do
        port=$((20000 + RANDOM % 30000))
        case " $taken_ports " in *" $port "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            taken_ports="$taken_ports $port"
            printf -v "$1" '%s' "$port"
            return
        fi
    done
    echo "no free port found" >&2
    return 1
}

# utime + stime of all threads of process $1, in clock ticks (fields 14 and 15 of
# /proc/PID/stat).
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    # The command name may hold spaces; the fields after it are fixed.
    set -- ${stat##*) }
    echo $((${12} + ${13}))
}
