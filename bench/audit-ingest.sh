#!/usr/bin/env bash
# Audit ingest of one control-plane core: a real `conduit-control-plane serve`, pinned to
# CPU 0, receives audit batches over the config stream from `conduit-bench-audit-ingest`
# (pinned to CPU 1), which speaks as a data plane does and sends 500-record batches as fast
# as they are acked (8 on the way). Each round prints the records stored per second and
# the control plane's CPU time per stored record (utime + stime from /proc/PID/stat,
# measured until its background checkpoint has run); at the end the records stored
# (metric and a row count of audit.db) must equal the records sent, or the run fails.
#
#   bash bench/audit-ingest.sh                          # 3 rounds of 10 s on one database
#   bash bench/audit-ingest.sh --rounds 5 --duration 20
#   bash bench/audit-ingest.sh --no-build               # reuse the release binaries
#   bash bench/audit-ingest.sh --cp-binary FILE         # another control-plane build
#                                                       # (e.g. a saved copy of an older one)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

rounds=3
duration=10s
build=1
settle=3
cp_binary=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --settle) settle=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --cp-binary) cp_binary=$2; shift 2 ;;
        -h|--help)
            cat <<EOF
usage: bash bench/audit-ingest.sh [options]
  --rounds N        generator runs, one after the other, on the same database   [$rounds]
  --duration D      sending time per round (humantime, e.g. 10s)                 [$duration]
  --settle S        seconds to wait after a round before the CPU time is read,
                    so a background checkpoint of the round is counted          [$settle]
  --no-build        use the release binaries already built
  --cp-binary FILE  run this conduit-control-plane instead of the release build
EOF
            exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "two CPUs are needed (control plane on 0, generator on 1)" >&2; exit 1; }

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
if [ "$build" -eq 1 ]; then
    CARGO_INCREMENTAL=0 cargo build --release -p conduit-control-plane -p conduit-e2e --bins
fi

bench_work_dir conduit-bench-audit

# Copies, so a rebuild elsewhere cannot swap a binary mid-run.
cp "${cp_binary:-$target_dir/release/conduit-control-plane}" "$work/conduit-control-plane"
cp "$target_dir/release/conduit-bench-audit-ingest" "$work/"

take_port grpc_port
take_port http_port
export CONDUIT_DP_TOKEN="bench-dp-token-$RANDOM$RANDOM"
export CONDUIT_ADMIN_TOKEN="bench-admin-token-$RANDOM$RANDOM"
mkdir -m 700 "$work/data"
RUST_LOG=info taskset -c 0 "$work/conduit-control-plane" serve \
    --listen "127.0.0.1:$grpc_port" --http-listen "127.0.0.1:$http_port" \
    --data-dir "$work/data" >"$work/control-plane.log" 2>&1 &
cp_pid=$!
pids+=("$cp_pid")
for attempt in $(seq 1 100); do
    curl -sf --max-time 1 "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
    [ "$attempt" -eq 100 ] && { echo "the control plane did not start:" >&2; cat "$work/control-plane.log" >&2; exit 1; }
    sleep 0.1
done

metric() {
    curl -sf --max-time 2 "http://127.0.0.1:$http_port/metrics" |
        awk -v name="$1" '$1 ~ "^" name "({|$)" {s += $NF} END {printf "%d", s}'
}
field() { awk -F= -v key="$1" '$1 == key {print $2}' "$2"; }

printf '%-6s %12s %12s %12s %14s\n' round records "records/s" "cp CPU µs" "cp CPU µs/rec"
sent_total=0
rates=()
costs=()
for round in $(seq 1 "$rounds"); do
    stored_before=$(metric conduit_cp_audit_records_total)
    ticks_before=$(cpu_ticks "$cp_pid")
    out="$work/round-$round.txt"
    if ! taskset -c 1 "$work/conduit-bench-audit-ingest" --url "http://127.0.0.1:$grpc_port" \
        --node-id "bench-dp-$round" --duration "$duration" >"$out" 2>"$work/generator.log"; then
        echo "round $round failed:" >&2
        cat "$work/generator.log" >&2
        tail -20 "$work/control-plane.log" >&2
        exit 1
    fi
    # The control plane's work for this round includes the checkpoint that follows it.
    sleep "$settle"
    ticks_after=$(cpu_ticks "$cp_pid")
    stored=$(( $(metric conduit_cp_audit_records_total) - stored_before ))
    sent=$(field records_sent "$out")
    sent_total=$((sent_total + sent))
    rate=$(field records_per_s "$out")
    cpu_us=$(( (ticks_after - ticks_before) * 1000000 / clock_ticks ))
    per_record=$(awk -v us="$cpu_us" -v n="$stored" 'BEGIN {printf "%.2f", n ? us / n : 0}')
    printf '%-6s %12s %12s %12s %14s\n' "$round" "$stored" "$rate" "$cpu_us" "$per_record"
    rates+=("$rate")
    costs+=("$per_record")
    if [ "$stored" != "$sent" ]; then
        echo "round $round: $sent records sent but $stored stored" >&2
        exit 1
    fi
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
stored_metric=$(metric conduit_cp_audit_records_total)
failures=$(metric conduit_cp_audit_ingest_failures_total)
rows="(no python3: rows not counted)"
if command -v python3 >/dev/null; then
    rows=$(python3 - "$work/data/audit.db" <<'EOF'
import sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
columns = [row[1] for row in conn.execute("PRAGMA table_info(audit_records)")]
# Segments (schema 3) hold record_count records each; older schemas a record per row.
count = "SUM(record_count)" if "record_count" in columns else "COUNT(*)"
print(conn.execute(f"SELECT COALESCE({count}, 0) FROM audit_records").fetchone()[0])
EOF
)
fi
db_mb=$(du -cm "$work/data"/audit.db* | awk 'END {print $1}')
echo
echo "median of $rounds rounds: $(median "${rates[@]}") records/s stored by one core," \
    "$(median "${costs[@]}") µs of control-plane CPU per stored record" \
    "(targets: >= 200000/s, <= 5 µs)"
echo "records: $sent_total sent, $stored_metric stored (metric), $rows in audit.db" \
    "(${db_mb} MB with its WAL), $failures ingest failures"
if [ "$stored_metric" != "$sent_total" ] || { [[ "$rows" =~ ^[0-9]+$ ]] && [ "$rows" != "$sent_total" ]; }; then
    echo "FAIL: the records stored differ from the records sent" >&2
    exit 1
fi
