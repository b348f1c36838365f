#!/usr/bin/env bash
# Proxy overhead of one data plane: a fast stateless MCP upstream (conduit-bench-upstream)
# measured directly, through a bare hyper proxy that parses the JSON both ways (the floor,
# conduit-bench-bare-proxy) and through a conduit-data-plane, alternating, in one run.
# wrk (bench/proxy.lua) sends tools/call "add" and checks every answer. Prints throughput
# and p50/p99 at saturation and at a fixed rate, the added latency, each proxy's CPU time
# per proxied request (/proc/PID/stat), the data plane's figures as ratios of the floor's,
# and idle RSS. Exits non-zero when any request failed, any answer was wrong or (with
# --control-plane) any audit record was lost.
#
#   bash bench/proxy.sh                          # 3 rounds of 10 s per measurement
#   bash bench/proxy.sh --rounds 5 --duration 20
#   bash bench/proxy.sh --control-plane          # the data plane takes its config from a
#                                                # control plane and ships audit records to it
#   bash bench/proxy.sh --no-build               # reuse the release binaries
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

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
  --rounds N            rounds of (saturation, fixed rate) x (direct, bare proxy,
                        data plane)                                               [$rounds]
  --duration S          seconds per measurement                                  [$duration]
  --rate R              requests/s of the fixed-rate measurement                  [$rate]
  --threads T           wrk threads at saturation                                 [$sat_threads]
  --connections C       wrk connections at saturation                             [$sat_connections]
  --rate-connections C  wrk connections at the fixed rate                         [$rate_connections]
  --workers N           --worker-threads of the data plane and the bare proxy     [one per CPU]
  --policies            turn every policy phase on (API-key auth, ACL, a guardrail rule
                        that never matches, a memory rate limit never reached), to see
                        what policy evaluation adds; the direct baseline is unchanged
  --control-plane       run a control plane too: the data plane gets the config over the
                        config stream and sends an audit record of every request to it
                        (stored in SQLite), as in production; prints per measurement the
                        requests sent, records stored and dropped and the control plane's
                        CPU per stored record, and checks that every request was recorded
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
    packages=(-p conduit-data-plane -p conduit-bench-upstream -p conduit-bench-bare-proxy)
    [ "$control_plane" = 1 ] && packages+=(-p conduit-control-plane -p conduitctl)
    CARGO_INCREMENTAL=0 cargo build --release "${packages[@]}"
fi

bench_work_dir conduit-bench-proxy

# Copies, so a rebuild elsewhere cannot swap a binary mid-run.
cp "$target_dir/release/conduit-data-plane" "$target_dir/release/conduit-bench-upstream" \
    "$target_dir/release/conduit-bench-bare-proxy" "$work/"
if [ "$control_plane" = 1 ]; then
    cp "$target_dir/release/conduit-control-plane" "$target_dir/release/conduitctl" "$work/"
fi

take_port upstream_port
take_port proxy_port
take_port admin_port
take_port bare_port
direct_url="http://127.0.0.1:$upstream_port/mcp"
bare_url="http://127.0.0.1:$bare_port/mcp"
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
# The floor: the same hop with nothing but the JSON parsed and written both ways.
"$work/conduit-bench-bare-proxy" --listen "127.0.0.1:$bare_port" --upstream "$direct_url" \
    ${workers:+--worker-threads "$workers"} >"$work/bare-proxy.log" 2>&1 &
bare_pid=$!
pids+=("$bare_pid")
# The default log level, as in production: what is disabled must cost nothing.
config_source=(--config "$work/config/conduit.yaml")
cp_pid=""
if [ "$control_plane" = 1 ]; then
    take_port cp_grpc_port
    take_port cp_http_port
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
        probe "$direct_url" && probe "$bare_url"; then
        break
    fi
    if [ "$attempt" -eq 100 ]; then
        echo "the data plane, the bare proxy or the upstream did not start; logs:" >&2
        cat "$work/upstream.log" "$work/bare-proxy.log" "$work/data-plane.log" >&2
        exit 1
    fi
    sleep 0.1
done

# Idle: configured and ready, no MCP request served yet.
sleep 1
rss_idle_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$dp_pid/status")
# The bare proxy has served the probe above; its RSS is for scale.
bare_rss_idle_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$bare_pid/status")
probe "$gateway_url" || { echo "a request through the data plane failed" >&2; cat "$work/data-plane.log" >&2; exit 1; }

results="$work/results"
: >"$results"
failed=0

declare -A target_url=([direct]=$direct_url [bare]=$bare_url [gateway]=$gateway_url)
# The process whose CPU a measurement charges to the proxy (none when direct).
declare -A target_pid=([direct]="" [bare]=$bare_pid [gateway]=$dp_pid)
declare -A target_label=([direct]=direct [bare]="bare proxy" [gateway]="data plane")

# The sum of every series of metric NAME at URL (a Prometheus text page); -1 when the page
# cannot be read.
sum_metric() {
    local page
    page=$(curl -sf --max-time 2 "$1") || { echo -1; return 0; }
    awk -v name="$2" '$1 ~ "^" name "({|$)" {s += $NF} END {printf "%d", s}' <<<"$page"
}
dp_metrics="http://127.0.0.1:$admin_port/metrics"
cp_metrics=""
[ -n "$cp_pid" ] && cp_metrics="http://127.0.0.1:$cp_http_port/metrics"
# The audit counters, space separated: requests the data plane served, records the control
# plane stored, records the data plane dropped (queue full, then never deliverable).
audit_counters() {
    echo "$(sum_metric "$dp_metrics" conduit_dp_requests_total)" \
        "$(sum_metric "$cp_metrics" conduit_cp_audit_records_total)" \
        "$(sum_metric "$dp_metrics" conduit_audit_dropped_total)" \
        "$(sum_metric "$dp_metrics" conduit_dp_audit_undeliverable_total)"
}
# Waits (at most 30 s) until the data plane's audit queue is empty: every record made so
# far is stored on the control plane (acked) or dropped.
drain_audit() {
    local attempt depth=-1
    # The last requests' records are written as those requests end.
    sleep 0.2
    for attempt in $(seq 1 300); do
        depth=$(sum_metric "$dp_metrics" conduit_dp_audit_queue_depth)
        [ "$depth" = 0 ] && return 0
        sleep 0.1
    done
    echo "the data plane's audit queue did not drain in 30 s ($depth records left)" >&2
}

# measure MODE TARGET ROUND: one wrk run; appends a line to $results.
measure() {
    local mode=$1 target=$2 round=$3 url=${target_url[$2]} pid=${target_pid[$2]}
    local threads connections rate_env=0
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
    # With a control plane, the data plane's measurements include shipping and storing
    # their records: the counters and CPU are read once its audit queue has drained.
    local audit=0
    [ -n "$cp_pid" ] && [ "$target" = gateway ] && audit=1
    local proxy_before=0 proxy_after=0 up_before up_after cp_before=0 cp_after=0
    local counters_before="0 0 0 0" counters_after="0 0 0 0"
    [ "$audit" = 1 ] && counters_before=$(audit_counters)
    [ -n "$cp_pid" ] && cp_before=$(cpu_ticks "$cp_pid")
    [ -n "$pid" ] && proxy_before=$(cpu_ticks "$pid")
    up_before=$(cpu_ticks "$upstream_pid")
    if ! BENCH_RATE=$rate_env BENCH_THREADS=$threads timeout $((seconds + 30)) \
        wrk -t"$threads" -c"$connections" -d"${seconds}s" --timeout 5s -s bench/proxy.lua "$url" \
        >"$work/wrk.out" 2>&1; then
        echo "wrk failed:" >&2
        cat "$work/wrk.out" >&2
        exit 1
    fi
    up_after=$(cpu_ticks "$upstream_pid")
    [ "$audit" = 1 ] && drain_audit
    [ -n "$pid" ] && proxy_after=$(cpu_ticks "$pid")
    [ -n "$cp_pid" ] && cp_after=$(cpu_ticks "$cp_pid")
    [ "$audit" = 1 ] && counters_after=$(audit_counters)
    local result
    result=$(grep '^RESULT ' "$work/wrk.out") || { cat "$work/wrk.out" >&2; exit 1; }
    [ "$round" = warmup ] && return
    # key=value pairs of the RESULT line into a line of $results: mode target round req/s
    # p50 p99 proxy-µs/req upstream-µs/req answers errors cp-µs/req served stored dropped
    # cp-µs/stored-record.
    echo "$result" | awk -v mode="$mode" -v target="$target" -v round="$round" \
        -v px="$((proxy_after - proxy_before))" -v up="$((up_after - up_before))" \
        -v hz="$clock_ticks" -v cp="$((cp_after - cp_before))" \
        -v before="$counters_before" -v after="$counters_after" '{
        for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
        n = r["requests"]
        errors = r["non200"] + r["mismatches"] + r["connect_errors"] + r["read_errors"] \
            + r["write_errors"] + r["timeouts"] + (n - r["checked"])
        split(before, b, " "); split(after, a, " ")
        served = a[1] - b[1]; stored = a[2] - b[2]; dropped = a[3] - b[3] + a[4] - b[4]
        printf "%s %s %s %.1f %d %d %.2f %.2f %d %d %.2f %d %d %d %.2f\n", mode, target, round, \
            n * 1e6 / r["duration_us"], r["p50_us"], r["p99_us"], \
            px * 1e6 / hz / n, up * 1e6 / hz / n, n, errors, cp * 1e6 / hz / n, \
            served, stored, dropped, (stored > 0 ? cp * 1e6 / hz / stored : 0)
    }' >>"$results"
    local line
    line=$(tail -n 1 "$results")
    set -- $line
    printf '  round %s  %-10s %-10s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  proxy %6.1f µs/req  upstream %5.1f µs/req  %s\n' \
        "$3" "$1" "${target_label[$2]}" "$4" "$(awk -v v="$5" 'BEGIN {print v / 1000}')" \
        "$(awk -v v="$6" 'BEGIN {print v / 1000}')" "$7" "$8" \
        "$([ "${10}" -eq 0 ] && echo "all $9 answers checked" || echo "${10} ERRORS")"
    if [ "${10}" -ne 0 ]; then
        failed=1
        grep '^RESULT\|^SAMPLE' "$work/wrk.out" >&2
    fi
    if [ "$audit" = 1 ]; then
        printf '           audit: %s requests answered to wrk, %s served by the data plane, %s records stored, %s dropped; control plane %.1f µs CPU per stored record\n' \
            "$9" "${12}" "${13}" "${14}" "${15}"
        if [ "${14}" -ne 0 ]; then
            echo "           RECORDS DROPPED: ${14} of ${12} ($(awk -v d="${14}" -v s="${12}" 'BEGIN {printf "%.2f", 100 * d / s}') %)" >&2
        elif [ "${13}" -ne "${12}" ]; then
            echo "           RECORDS MISSING: ${12} served, ${13} stored" >&2
        fi
    fi
}

echo "direct:     $direct_url"
echo "bare proxy: $bare_url (conduit-bench-bare-proxy pid $bare_pid)"
echo "data plane: $gateway_url (conduit-data-plane pid $dp_pid)"
echo "proxy workers: ${workers:-one per CPU}; saturation: wrk $sat_threads threads x $sat_connections connections; fixed rate: $rate req/s over $rate_connections connections; $rounds rounds of ${duration} s"
for target in direct bare gateway; do
    measure saturation "$target" warmup
done
for round in $(seq 1 "$rounds"); do
    # Alternate the order, so a drift in the machine's load favours no target.
    if [ $((round % 2)) -eq 1 ]; then order="direct bare gateway"; else order="gateway bare direct"; fi
    for mode in saturation rate; do
        for target in $order; do
            measure "$mode" "$target" "$round"
        done
    done
done
rss_after_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$dp_pid/status")
bare_rss_after_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$bare_pid/status")
# Keep-alive: the proxies' pooled connections to the upstream, still open after the last
# round (at most one per concurrent request, reused by every round).
upstream_connections() {
    ss -Htnp state established "( dport = :$upstream_port )" 2>/dev/null | grep -c "pid=$1," || true
}
pooled=$(upstream_connections "$dp_pid")
bare_pooled=$(upstream_connections "$bare_pid")

median_of() {
    sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# The median of column COL over the rounds of MODE/TARGET.
median() {
    awk -v mode="$1" -v target="$2" -v col="$3" '$1 == mode && $2 == target {print $col}' "$results" | median_of
}
# median_pair MODE COL OP A B: the median over the rounds of A/B (OP ratio) or A-B (OP diff)
# of column COL of MODE, both measured in the same round.
median_pair() {
    awk -v mode="$1" -v col="$2" -v op="$3" -v a="$4" -v b="$5" '
        $1 == mode {v[$3, $2] = $col; rounds[$3] = 1}
        END {
            for (r in rounds) if (((r, a) in v) && ((r, b) in v))
                print (op == "ratio" ? (v[r, b] ? v[r, a] / v[r, b] : 0) : v[r, a] - v[r, b])
        }' "$results" | median_of
}
# The sum of column COL over the rounds of MODE/TARGET.
total() {
    awk -v mode="$1" -v target="$2" -v col="$3" '$1 == mode && $2 == target {s += $col} END {printf "%d", s}' "$results"
}

ms() { awk -v v="$1" 'BEGIN {printf "%.3f ms", v / 1000}'; }
plus_ms() { awk -v v="$1" 'BEGIN {printf "%+.3f ms", v / 1000}'; }
times() { awk -v v="$1" 'BEGIN {printf "%.2fx", v}'; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k / 1024}'; }
verdict() { awk -v ok="$1" 'BEGIN {print (ok ? "met" : "MISSED")}'; }
row() { printf '%-38s %12s %12s %12s %11s   %s\n' "$@" | sed 's/ *$//'; }

sat_ratio_bare=$(median_pair saturation 4 ratio gateway bare)
sat_ratio_direct=$(median_pair saturation 4 ratio gateway direct)
bare_ratio_direct=$(median_pair saturation 4 ratio bare direct)
cpu_ratio_sat=$(median_pair saturation 7 ratio gateway bare)
cpu_ratio_rate=$(median_pair rate 7 ratio gateway bare)
cpu_sat=$(median saturation gateway 7)
added_p50=$(median_pair rate 5 diff gateway direct)
added_p99=$(median_pair rate 6 diff gateway direct)
added_p50_bare=$(median_pair rate 5 diff gateway bare)
added_p99_bare=$(median_pair rate 6 diff gateway bare)
floor_p50=$(median_pair rate 5 diff bare direct)

echo
echo "Medians of $rounds rounds (ratios and added latency: medians of the per-round values)."
row "" direct "bare proxy" "data plane" "" target
row "saturation: throughput (req/s)" "$(printf %.0f "$(median saturation direct 4)")" \
    "$(printf %.0f "$(median saturation bare 4)")" "$(printf %.0f "$(median saturation gateway 4)")"
row "  data plane / bare proxy" "" "" "" "$(times "$sat_ratio_bare")" \
    "≥ 0.8x  $(verdict "$(awk -v r="$sat_ratio_bare" 'BEGIN {print (r >= 0.8)}')")"
row "  proxy / direct" "" "$(times "$bare_ratio_direct")" "" "$(times "$sat_ratio_direct")" \
    "≥ 0.25x  $(verdict "$(awk -v r="$sat_ratio_direct" 'BEGIN {print (r >= 0.25)}')")"
row "saturation: p50" "$(ms "$(median saturation direct 5)")" "$(ms "$(median saturation bare 5)")" \
    "$(ms "$(median saturation gateway 5)")"
row "saturation: p99" "$(ms "$(median saturation direct 6)")" "$(ms "$(median saturation bare 6)")" \
    "$(ms "$(median saturation gateway 6)")"
row "$rate req/s: achieved (req/s)" "$(printf %.0f "$(median rate direct 4)")" \
    "$(printf %.0f "$(median rate bare 4)")" "$(printf %.0f "$(median rate gateway 4)")"
row "$rate req/s: p50" "$(ms "$(median rate direct 5)")" "$(ms "$(median rate bare 5)")" \
    "$(ms "$(median rate gateway 5)")"
row "  added p50, data plane - bare proxy" "" "" "" "$(plus_ms "$added_p50_bare")" \
    "≤ +0.05 ms  $(verdict "$(awk -v a="$added_p50_bare" 'BEGIN {print (a <= 50)}')")"
row "  added p50, proxy - direct" "" "$(plus_ms "$floor_p50")" "" "$(plus_ms "$added_p50")" \
    "≤ +0.1 ms  $(verdict "$(awk -v a="$added_p50" 'BEGIN {print (a <= 100)}')")"
row "$rate req/s: p99" "$(ms "$(median rate direct 6)")" "$(ms "$(median rate bare 6)")" \
    "$(ms "$(median rate gateway 6)")"
row "  added p99, data plane - bare proxy" "" "" "" "$(plus_ms "$added_p99_bare")"
row "  added p99, data plane - direct" "" "" "" "$(plus_ms "$added_p99")" \
    "≤ +0.5 ms  $(verdict "$(awk -v a="$added_p99" 'BEGIN {print (a <= 500)}')")"
row "CPU per request at saturation (µs)" "$(median saturation direct 8)" \
    "$(median saturation bare 7)" "$cpu_sat" "" \
    "≤ 50 µs  $(verdict "$(awk -v c="$cpu_sat" 'BEGIN {print (c <= 50)}')")"
row "  data plane / bare proxy" "" "" "" "$(times "$cpu_ratio_sat")" \
    "≤ 1.2x  $(verdict "$(awk -v r="$cpu_ratio_sat" 'BEGIN {print (r <= 1.2)}')")"
row "CPU per request at $rate req/s (µs)" "$(median rate direct 8)" "$(median rate bare 7)" \
    "$(median rate gateway 7)"
row "  data plane / bare proxy" "" "" "" "$(times "$cpu_ratio_rate")"
row "RSS idle" "" "$(mb "$bare_rss_idle_kb")" "$(mb "$rss_idle_kb")" "" \
    "≤ 15 MB  $(verdict "$((rss_idle_kb <= 15 * 1024))")"
row "RSS after load" "" "$(mb "$bare_rss_after_kb")" "$(mb "$rss_after_kb")"
echo "(CPU per request: the direct column is the upstream's own, for scale; the proxies' from"
echo " /proc/PID/stat, all threads, user + system.)"
if [ -n "$cp_pid" ]; then
    cp_per_record=$(median saturation gateway 15)
    row "control plane CPU per request (µs)" "" "" \
        "$(median saturation gateway 11) / $(median rate gateway 11)"
    echo "(control plane: at saturation / at $rate req/s, storing the audit records)"
    row "control plane CPU per stored record" "" "" "$(awk -v c="$cp_per_record" 'BEGIN {printf "%.1f µs", c}')" "" \
        "≤ 5 µs  $(verdict "$(awk -v c="$cp_per_record" 'BEGIN {print (c > 0 && c <= 5)}')")"
    row "  records one core stores (/s)" "" "" \
        "$(awk -v c="$cp_per_record" 'BEGIN {printf "%.0f", (c > 0 ? 1e6 / c : 0)}')" "" \
        "≥ 200000/s  $(verdict "$(awk -v c="$cp_per_record" 'BEGIN {print (c > 0 && 1e6 / c >= 200000)}')")"
    echo "(at saturation; the control plane shares the two cores with wrk, the upstream and the proxies)"
    sat_sent=$(total saturation gateway 9)
    sat_served=$(total saturation gateway 12)
    sat_stored=$(total saturation gateway 13)
    sat_dropped=$(total saturation gateway 14)
    echo "saturation runs, all rounds: $sat_sent requests answered to wrk, $sat_served served by the data plane, $sat_stored records stored, $sat_dropped dropped"

    # Over the whole run: every request the data plane counted must be stored once.
    drain_audit
    read -r served stored queue_full undeliverable <<<"$(audit_counters)"
    dropped=$((queue_full + undeliverable))
    # The records in the control plane's store, counted there (not from its metrics).
    in_store=$(CONDUIT_SERVER="http://127.0.0.1:$cp_grpc_port" timeout 60 "$work/conduitctl" \
        stats --since 1h -o json | awk -F: '/"requests"/ {gsub(/[ ,]/, "", $2); print $2; exit}')
    echo "audit records, whole run: $served requests served, $stored stored on the control plane ($in_store in its store by conduitctl stats), $dropped dropped ($queue_full queue full, $undeliverable undeliverable)"
    if [ "$dropped" -ne 0 ]; then
        echo "RECORDS DROPPED: $dropped of $served audit records were lost ($(awk -v d="$dropped" -v s="$served" 'BEGIN {printf "%.2f", 100 * d / s}') %)" >&2
    fi
    if [ "$stored" -ne "$served" ] || [ "$dropped" -ne 0 ] || [ "${in_store:-x}" != "$stored" ]; then
        echo "FAILED: every request must be recorded exactly once" >&2
        failed=1
    fi
fi
echo "connections to the upstream after all rounds: data plane $pooled, bare proxy $bare_pooled (pooled, keep-alive)"

if [ "$failed" -ne 0 ]; then
    echo "FAILED: some requests failed, got wrong answers or lost their audit record (see above)" >&2
    exit 1
fi
