#!/usr/bin/env bash
# Starts a working Conduit gateway on this machine:
#
#   bash scripts/quickstart.sh
#
# builds the binaries, then runs the example MCP server (conduit-mcp-fixture, :3001), a
# control plane (gRPC :7700, HTTP :7701, SQLite under .conduit-quickstart/), one data plane
# (MCP :8080, admin :9901) and applies examples/quickstart.yaml with --wait. It then prints
# how to call the gateway and stays in the foreground; Ctrl-C stops everything.
#
#   bash scripts/quickstart.sh --smoke-test   # same, but calls the gateway once and exits
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

SMOKE_TEST=0
case "${1:-}" in
    --smoke-test) SMOKE_TEST=1 ;;
    "") ;;
    *) echo "usage: bash scripts/quickstart.sh [--smoke-test]" >&2; exit 64 ;;
esac

FIXTURE_ADDR=127.0.0.1:3001
CP_GRPC=127.0.0.1:7700
CP_HTTP=127.0.0.1:7701
DP_LISTEN=127.0.0.1:8080
DP_ADMIN=127.0.0.1:9901
STATE="$ROOT/.conduit-quickstart"
BIN="$ROOT/target/debug"

die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# ---- stop every child on exit, whatever the reason ------------------------------------
PIDS=()
cleanup() {
    local status=$?
    trap - INT TERM EXIT
    if [ "${#PIDS[@]}" -gt 0 ]; then
        log "stopping the gateway"
        kill -TERM "${PIDS[@]}" 2>/dev/null || true
        wait "${PIDS[@]}" 2>/dev/null || true
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers ---------------------------------------------------------------------------

# HTTP status code of GET URL (000 when nothing answers); curl when present, else bash's
# /dev/tcp so a fresh machine needs nothing extra.
http_status() {
    local url=$1
    if command -v curl >/dev/null 2>&1; then
        curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || printf '000'
        return
    fi
    local rest=${url#http://}
    local hostport=${rest%%/*}
    local path=/${rest#*/}
    local host=${hostport%%:*} port=${hostport##*:}
    local line
    if exec 3<>"/dev/tcp/$host/$port" 2>/dev/null; then
        printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3
        read -r -t 2 line <&3 || true
        exec 3>&- 3<&-
        printf '%s' "$(echo "$line" | awk '{print $2}')"
    else
        printf '000'
    fi
}

port_in_use() {
    local host=${1%%:*} port=${1##*:}
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

wait_for() { # URL WHAT LOGFILE PID
    local url=$1 what=$2 logfile=$3 pid=$4
    for _ in $(seq 1 150); do
        [ "$(http_status "$url")" = "200" ] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$logfile" >&2 || true
            die "$what exited during start-up (log: $logfile)"
        fi
        sleep 0.2
    done
    tail -n 30 "$logfile" >&2 || true
    die "$what did not become ready within 30s (log: $logfile)"
}

# ---- build -----------------------------------------------------------------------------
[ -f examples/quickstart.yaml ] || die "examples/quickstart.yaml is missing"
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
ensure_quickstart_dependencies

log "building the binaries (cargo build --workspace --bins)"
cargo build --workspace --bins

for addr in "$FIXTURE_ADDR" "$CP_GRPC" "$CP_HTTP" "$DP_LISTEN" "$DP_ADMIN"; do
    port_in_use "$addr" && die "$addr is already in use (another quickstart still running?)"
done

mkdir -p "$STATE"
chmod 700 "$STATE"
export CONDUIT_SERVER="http://$CP_GRPC"

# ---- start -----------------------------------------------------------------------------
log "starting the example MCP server on http://$FIXTURE_ADDR/mcp"
"$BIN/conduit-mcp-fixture" --listen "$FIXTURE_ADDR" >"$STATE/fixture.log" 2>&1 &
PIDS+=($!)
FIXTURE_PID=$!

log "starting the control plane (gRPC $CP_GRPC, HTTP $CP_HTTP, data in $STATE/data)"
"$BIN/conduit-control-plane" serve \
    --listen "$CP_GRPC" --http-listen "$CP_HTTP" \
    --data-dir "$STATE/data" >"$STATE/control-plane.log" 2>&1 &
PIDS+=($!)
wait_for "http://$CP_HTTP/readyz" "the control plane" "$STATE/control-plane.log" $!

log "starting a data plane (MCP $DP_LISTEN, admin $DP_ADMIN)"
"$BIN/conduit-data-plane" run \
    --control-plane "http://$CP_GRPC" \
    --listen "$DP_LISTEN" --admin-listen "$DP_ADMIN" \
    --node-id quickstart-dp --labels env=quickstart \
    --state-dir "$STATE/dp-state" >"$STATE/data-plane.log" 2>&1 &
PIDS+=($!)
DP_PID=$!
wait_for "http://$DP_ADMIN/healthz" "the data plane" "$STATE/data-plane.log" "$DP_PID"
kill -0 "$FIXTURE_PID" 2>/dev/null || die "the example MCP server exited (log: $STATE/fixture.log)"

# The data plane must be connected before --wait so that it is part of the rollout.
for _ in $(seq 1 100); do
    "$BIN/conduitctl" status -o json 2>/dev/null | grep -q '"connected": *true' && break
    sleep 0.2
done

log "applying examples/quickstart.yaml"
"$BIN/conduitctl" apply -f examples/quickstart.yaml --wait -m "quickstart" --author quickstart
wait_for "http://$DP_ADMIN/readyz" "the data plane" "$STATE/data-plane.log" "$DP_PID"

echo
"$BIN/conduitctl" status
echo

MCP_URL="http://$DP_LISTEN/mcp/everything"
cat <<EOT
Conduit is running. The example MCP server is behind the gateway at $MCP_URL

Call it (initialize, then a tool call in the returned session):

  SID=\$(curl -s -D - -o /dev/null -X POST $MCP_URL \\
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}' \\
    | tr -d '\r' | awk 'tolower(\$1)=="mcp-session-id:" {print \$2}')
  curl -s -X POST $MCP_URL -H 'Content-Type: application/json' \\
    -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: \$SID" \\
    -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  curl -s -X POST $MCP_URL -H 'Content-Type: application/json' \\
    -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: \$SID" \\
    -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}'

Manage it:

  export CONDUIT_SERVER=http://$CP_GRPC
  $BIN/conduitctl status
  $BIN/conduitctl history
  curl -s http://$DP_ADMIN/config_dump

Logs are in $STATE/. Press Ctrl-C to stop everything.
EOT

if [ "$SMOKE_TEST" -eq 1 ]; then
    command -v curl >/dev/null 2>&1 || die "--smoke-test needs curl"
    log "smoke test: initialize + tools/call echo through the gateway"
    headers=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
    sid=$(curl -s -D - -o /dev/null -X POST "$MCP_URL" "${headers[@]}" \
        -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"smoke","version":"0"}}}' |
        tr -d '\r' | awk 'tolower($1)=="mcp-session-id:" {print $2}')
    [ -n "$sid" ] || die "no Mcp-Session-Id from $MCP_URL"
    curl -s -o /dev/null -X POST "$MCP_URL" "${headers[@]}" -H "Mcp-Session-Id: $sid" \
        -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    reply=$(curl -s -X POST "$MCP_URL" "${headers[@]}" -H "Mcp-Session-Id: $sid" \
        -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"smoke-ok"}}}')
    echo "$reply"
    echo "$reply" | grep -q 'smoke-ok' || die "unexpected reply from the gateway"
    log "smoke test passed"
    exit 0
fi

wait "${PIDS[@]}"
