#!/usr/bin/env bash
# Proxy overhead of one data plane: a fast stateless MCP upstream (conduit-bench-upstream)
# measured directly and through a standalone conduit-data-plane, alternating, in one run.
# wrk (bench/proxy.lua) sends tools/call "add" and checks every answer. Prints throughput
# and p50/p99 at saturation and at a fixed rate, the added latency, the data plane's CPU time
# per proxied request (/proc/PID/stat) and its idle RSS. Exits non-zero when any request
# failed or any answer was wrong.
#
#   bash bench/proxy.sh                          # 3 rounds of 10 s per measurement
#   bash bench/proxy.sh --rounds 5 --duration 20
#   bash bench/proxy.sh --control-plane          # the data plane takes its config from a
#                                                # control plane and ships audit records to it
#   bash bench/proxy.sh --no-build               # reuse the release binaries
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds=3
duration=10
rate=1000
sat_threads=2
sat_connections=32
rate_connections=8
warmup=2
workers=""
policies=0
control_plane=0
log_filter=info
build=1

usage() {
    cat <<EOF
usage: bash bench/proxy.sh [options]
  --rounds N            rounds of (saturation, fixed rate) x (direct, gateway)   [$rounds]
  --duration S          seconds per measurement                                  [$duration]
  --rate R              requests/s of the fixed-rate measurement                  [$rate]
  --threads T           wrk threads at saturation                                 [$sat_threads]
  --connections C       wrk connections at saturation                             [$sat_connections]
  --rate-connections C  wrk connections at the fixed rate                         [$rate_connections]
  --workers N           the data plane's --worker-threads                         [one per CPU]
  --policies            turn every policy phase on (API-key auth, ACL, a guardrail rule
                        that never matches, a memory rate limit never reached), to see
                        what policy evaluation adds; the direct baseline is unchanged
  --control-plane       run a control plane too: the data plane gets the config over the
                        config stream and sends an audit record of every request to it
                        (stored in SQLite), as in production; prints the control plane's
                        CPU per request and checks that every request was recorded
  --log FILTER          the data plane's RUST_LOG; a standalone data plane writes its
                        audit records as log events (target conduit::audit), so
                        'info,conduit::audit=off' measures it without them   [$log_filter]
  --no-build            use the release binaries as they are
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --threads) sat_threads=$2; shift 2 ;;
        --connections) sat_connections=$2; shift 2 ;;
        --rate-connections) rate_connections=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --policies) policies=1; shift ;;
        --control-plane) control_plane=1; shift ;;
        --log) log_filter=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
for value in "$rounds" "$duration" "$rate" "$sat_threads" "$sat_connections" "$rate_connections" ${workers:+"$workers"}; do
    [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "not a positive integer: $value" >&2; exit 2; }
done
# Every loop below is bounded; so is the whole run.
if [ "$rounds" -gt 20 ] || [ "$duration" -gt 300 ]; then
    echo "at most 20 rounds of 300 s" >&2
    exit 2
fi

if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y wrk >/dev/null || { $sudo apt-get update >/dev/null && $sudo apt-get install -y wrk >/dev/null; }
fi
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
if [ "$build" -eq 1 ]; then
    packages=(-p conduit-data-plane -p conduit-bench-upstream)
    [ "$control_plane" = 1 ] && packages+=(-p conduit-control-plane -p conduitctl)
    CARGO_INCREMENTAL=0 cargo build --release "${packages[@]}"
fi

work=$(mktemp -d -t conduit-bench-proxy.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Copies, so a rebuild elsewhere cannot swap a binary mid-run.
cp "$target_dir/release/conduit-data-plane" "$target_dir/release/conduit-bench-upstream" "$work/"
if [ "$control_plane" = 1 ]; then
    cp "$target_dir/release/conduit-control-plane" "$target_dir/release/conduitctl" "$work/"
fi

taken=""
free_port() {
    local attempt port
    for attempt in $(seq 1 100); do
        port=$((20000 + RANDOM % 30000))
        case " $taken " in *" $port "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            taken="$taken $port"
            echo "$port"
            return
        fi
    done
    echo "no free port found" >&2
    return 1
}
upstream_port=$(free_port)
proxy_port=$(free_port)
admin_port=$(free_port)
direct_url="http://127.0.0.1:$upstream_port/mcp"
gateway_url="http://127.0.0.1:$proxy_port/mcp/fast"

# In a directory of its own: the data plane watches the config file's directory.
mkdir "$work/config"
cat >"$work/config/conduit.yaml" <<EOF
servers:
  - id: fast
    url: $direct_url
EOF
bench_key=""
if [ "$policies" = 1 ]; then
    bench_key="bench-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    cat >>"$work/config/conduit.yaml" <<EOF
auth:
  method: api-key
  api_keys:
    - key: $bench_key
      client_id: bench
acl:
  default_action: deny
  policies:
    - name: bench
      clients: ["bench"]
      allow:
        - server: fast
          tools: ["add", "get_*"]
guardrails:
  default_action: allow
  rules:
    - name: no-huge-operands
      tools: ["add"]
      conditions:
        - field: a
          operator: gt
          value: 1000000000000
      action: block
rate_limits:
  per_client:
    requests_per_minute: 100000000
EOF
fi
export BENCH_API_KEY=$bench_key

"$work/conduit-bench-upstream" --listen "127.0.0.1:$upstream_port" >"$work/upstream.log" 2>&1 &
upstream_pid=$!
pids+=("$upstream_pid")
# The default log level, as in production: what is disabled must cost nothing.
config_source=(--config "$work/config/conduit.yaml")
cp_pid=""
if [ "$control_plane" = 1 ]; then
    cp_grpc_port=$(free_port)
    cp_http_port=$(free_port)
    mkdir -m 700 "$work/cp-data"
    RUST_LOG=info "$work/conduit-control-plane" serve --listen "127.0.0.1:$cp_grpc_port" \
        --http-listen "127.0.0.1:$cp_http_port" --data-dir "$work/cp-data" \
        >"$work/control-plane.log" 2>&1 &
    cp_pid=$!
    pids+=("$cp_pid")
    for attempt in $(seq 1 100); do
        curl -sf --max-time 1 "http://127.0.0.1:$cp_http_port/readyz" >/dev/null 2>&1 && break
        [ "$attempt" -eq 100 ] && { echo "the control plane did not start:" >&2; cat "$work/control-plane.log" >&2; exit 1; }
        sleep 0.1
    done
    CONDUIT_SERVER="http://127.0.0.1:$cp_grpc_port" timeout 60 "$work/conduitctl" apply \
        -f "$work/config/conduit.yaml" -m bench --author bench >/dev/null
    config_source=(--control-plane "http://127.0.0.1:$cp_grpc_port")
fi
RUST_LOG=$log_filter "$work/conduit-data-plane" run "${config_source[@]}" \
    --listen "127.0.0.1:$proxy_port" --admin-listen "127.0.0.1:$admin_port" --node-id bench \
    ${workers:+--worker-threads "$workers"} \
    >"$work/data-plane.log" 2>&1 &
dp_pid=$!
pids+=("$dp_pid")

# tools/call add: the answer must carry the id and the sum.
probe() {
    local body='{"jsonrpc":"2.0","id":"20+22","method":"tools/call","params":{"name":"add","arguments":{"a":20,"b":22}}}'
    curl -sf --max-time 2 -H 'content-type: application/json' -H "x-api-key: $bench_key" \
        -H 'accept: application/json, text/event-stream' -d "$body" "$1" 2>/dev/null |
        grep -q '"id":"20+22".*"text":"42"'
}
for attempt in $(seq 1 100); do
    if curl -sf --max-time 1 "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 &&
        probe "$direct_url"; then
        break
    fi
    if [ "$attempt" -eq 100 ]; then
        echo "the data plane or the upstream did not start; logs:" >&2
        cat "$work/upstream.log" "$work/data-plane.log" >&2
        exit 1
    fi
    sleep 0.1
done

# Idle: configured and ready, no MCP request served yet.
sleep 1
rss_idle_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$dp_pid/status")
probe "$gateway_url" || { echo "a request through the data plane failed" >&2; cat "$work/data-plane.log" >&2; exit 1; }

clock_ticks=$(getconf CLK_TCK)
# utime + stime of all threads, in clock ticks (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    # The command name may hold spaces; the fields after it are fixed.
    set -- ${stat##*) }
    echo $((${12} + ${13}))
}

results="$work/results"
: >"$results"
failed=0

# measure MODE TARGET ROUND: one wrk run; appends a line to $results.
measure() {
    local mode=$1 target=$2 round=$3 url threads connections rate_env=0
    if [ "$target" = direct ]; then url=$direct_url; else url=$gateway_url; fi
    if [ "$mode" = saturation ]; then
        threads=$sat_threads
        connections=$sat_connections
    else
        threads=1
        connections=$rate_connections
        rate_env=$rate
    fi
    local seconds=$duration
    [ "$round" = warmup ] && seconds=$warmup
    local dp_before up_before dp_after up_after cp_before=0 cp_after=0
    [ -n "$cp_pid" ] && cp_before=$(cpu_ticks "$cp_pid")
    dp_before=$(cpu_ticks "$dp_pid")
    up_before=$(cpu_ticks "$upstream_pid")
    if ! BENCH_RATE=$rate_env BENCH_THREADS=$threads timeout $((seconds + 30)) \
        wrk -t"$threads" -c"$connections" -d"${seconds}s" --timeout 5s -s bench/proxy.lua "$url" \
        >"$work/wrk.out" 2>&1; then
        echo "wrk failed:" >&2
        cat "$work/wrk.out" >&2
        exit 1
    fi
    dp_after=$(cpu_ticks "$dp_pid")
    up_after=$(cpu_ticks "$upstream_pid")
    [ -n "$cp_pid" ] && cp_after=$(cpu_ticks "$cp_pid")
    local result
    result=$(grep '^RESULT ' "$work/wrk.out") || { cat "$work/wrk.out" >&2; exit 1; }
    [ "$round" = warmup ] && return
    # key=value pairs of the RESULT line into a line of $results.
    echo "$result" | awk -v mode="$mode" -v target="$target" -v round="$round" \
        -v dp="$((dp_after - dp_before))" -v up="$((up_after - up_before))" -v hz="$clock_ticks" \
        -v cp="$((cp_after - cp_before))" '{
        for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
        n = r["requests"]
        errors = r["non200"] + r["mismatches"] + r["connect_errors"] + r["read_errors"] \
            + r["write_errors"] + r["timeouts"] + (n - r["checked"])
        printf "%s %s %s %.1f %d %d %.2f %.2f %d %d %.2f\n", mode, target, round, \
            n * 1e6 / r["duration_us"], r["p50_us"], r["p99_us"], \
            dp * 1e6 / hz / n, up * 1e6 / hz / n, n, errors, cp * 1e6 / hz / n
    }' >>"$results"
    local line
    line=$(tail -n 1 "$results")
    set -- $line
    printf '  round %s  %-10s %-8s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  data plane %6.1f µs/req  upstream %5.1f µs/req  %s\n' \
        "$3" "$1" "$2" "$4" "$(awk -v v="$5" 'BEGIN {print v / 1000}')" \
        "$(awk -v v="$6" 'BEGIN {print v / 1000}')" "$7" "$8" \
        "$([ "${10}" -eq 0 ] && echo "all $9 answers checked" || echo "${10} ERRORS")"
    if [ "${10}" -ne 0 ]; then
        failed=1
        grep '^RESULT\|^SAMPLE' "$work/wrk.out" >&2
    fi
}

echo "direct:  $direct_url"
echo "gateway: $gateway_url (conduit-data-plane pid $dp_pid)"
echo "data plane workers: ${workers:-one per CPU}; saturation: wrk $sat_threads threads x $sat_connections connections; fixed rate: $rate req/s over $rate_connections connections; $rounds rounds of ${duration} s"
for target in direct gateway; do
    measure saturation "$target" warmup
done
for round in $(seq 1 "$rounds"); do
    # Alternate which side goes first, so a drift in the machine's load favours neither.
    if [ $((round % 2)) -eq 1 ]; then order="direct gateway"; else order="gateway direct"; fi
    for mode in saturation rate; do
        for target in $order; do
            measure "$mode" "$target" "$round"
        done
    done
done
rss_after_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$dp_pid/status")
# Keep-alive: the data plane's pooled connections to the upstream, still open after the
# last round (at most one per concurrent request, reused by every round).
pooled=$(ss -Htnp state established "( dport = :$upstream_port )" 2>/dev/null | grep -c "pid=$dp_pid," || true)

# The median of column COL over the rounds of MODE/TARGET.
median() {
    awk -v mode="$1" -v target="$2" -v col="$3" '$1 == mode && $2 == target {print $col}' "$results" |
        sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# The median over the rounds of gateway minus direct, column COL of MODE, in the same round.
median_added() {
    awk -v mode="$1" -v col="$2" '$1 == mode {v[$3, $2] = $col; rounds[$3] = 1}
        END {for (r in rounds) print v[r, "gateway"] - v[r, "direct"]}' "$results" |
        sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

sat_direct=$(median saturation direct 4)
sat_gateway=$(median saturation gateway 4)
ratio=$(awk -v g="$sat_gateway" -v d="$sat_direct" 'BEGIN {printf "%.2f", g / d}')
ms() { awk -v v="$1" 'BEGIN {printf "%.3f ms", v / 1000}'; }
added_p50=$(median_added rate 5)
added_p99=$(median_added rate 6)
cpu_sat=$(median saturation gateway 7)
cpu_rate=$(median rate gateway 7)
up_sat=$(median saturation direct 8)
up_rate=$(median rate direct 8)
verdict() { awk -v ok="$1" 'BEGIN {print (ok ? "met" : "MISSED")}'; }

echo
echo "Medians of $rounds rounds (added latency: median of the per-round differences)."
printf '%-36s %14s %14s %16s   %s\n' "" direct gateway "gateway/direct" target
printf '%-36s %14s %14s %16s   %s\n' "saturation: throughput (req/s)" \
    "$(printf %.0f "$sat_direct")" "$(printf %.0f "$sat_gateway")" "${ratio}x" \
    "≥ 0.25x  $(verdict "$(awk -v r="$ratio" 'BEGIN {print (r >= 0.25)}')")"
printf '%-36s %14s %14s\n' "saturation: p50" "$(ms "$(median saturation direct 5)")" "$(ms "$(median saturation gateway 5)")"
printf '%-36s %14s %14s\n' "saturation: p99" "$(ms "$(median saturation direct 6)")" "$(ms "$(median saturation gateway 6)")"
printf '%-36s %14s %14s\n' "$rate req/s: achieved (req/s)" \
    "$(printf %.0f "$(median rate direct 4)")" "$(printf %.0f "$(median rate gateway 4)")"
printf '%-36s %14s %14s %16s   %s\n' "$rate req/s: p50" "$(ms "$(median rate direct 5)")" \
    "$(ms "$(median rate gateway 5)")" "+$(ms "$added_p50")" \
    "≤ +0.1 ms  $(verdict "$(awk -v a="$added_p50" 'BEGIN {print (a <= 100)}')")"
printf '%-36s %14s %14s %16s   %s\n' "$rate req/s: p99" "$(ms "$(median rate direct 6)")" \
    "$(ms "$(median rate gateway 6)")" "+$(ms "$added_p99")" \
    "≤ +0.5 ms  $(verdict "$(awk -v a="$added_p99" 'BEGIN {print (a <= 500)}')")"
printf '%-36s %14s %14s %16s   %s\n' "CPU per request at saturation (µs)" "$up_sat" "$cpu_sat" "" \
    "≤ 50 µs  $(verdict "$(awk -v c="$cpu_sat" 'BEGIN {print (c <= 50)}')")"
printf '%-36s %14s %14s\n' "CPU per request at $rate req/s (µs)" "$up_rate" "$cpu_rate"
printf '%-36s %14s %14s %16s   %s\n' "data plane RSS idle / after load" "" \
    "$(awk -v k="$rss_idle_kb" 'BEGIN {printf "%.1f MB", k / 1024}')" \
    "$(awk -v k="$rss_after_kb" 'BEGIN {printf "%.1f MB", k / 1024}')" \
    "< 30 MB  $(verdict "$((rss_idle_kb < 30 * 1024))")"
echo "(CPU per request: the direct column is the upstream's own, for scale.)"
if [ -n "$cp_pid" ]; then
    printf '%-36s %14s %14s\n' "control plane CPU per request (µs)" "" \
        "$(median saturation gateway 11) / $(median rate gateway 11)"
    echo "(control plane: at saturation / at $rate req/s, storing the audit records)"
    # Every request the data plane counted must be stored once the queue has drained.
    sum_metric() {
        curl -sf --max-time 2 "$1" | awk -v name="$2" '$1 ~ "^" name "({|$)" {s += $NF} END {printf "%d", s}'
    }
    served=$(sum_metric "http://127.0.0.1:$admin_port/metrics" conduit_dp_requests_total)
    stored=0
    for attempt in $(seq 1 300); do
        stored=$(sum_metric "http://127.0.0.1:$cp_http_port/metrics" conduit_cp_audit_records_total)
        [ "$stored" -ge "$served" ] && break
        sleep 0.1
    done
    dropped=$(sum_metric "http://127.0.0.1:$admin_port/metrics" conduit_audit_dropped_total)
    echo "audit records: $served requests served, $stored stored on the control plane, $dropped dropped"
    if [ "$stored" -ne "$served" ] || [ "$dropped" -ne 0 ]; then
        echo "FAILED: every request must be recorded exactly once" >&2
        failed=1
    fi
fi
echo "data plane connections to the upstream after all rounds: $pooled (pooled, keep-alive)"

if [ "$failed" -ne 0 ]; then
    echo "FAILED: some requests failed or got wrong answers (see above)" >&2
    exit 1
fi
