#!/usr/bin/env bash
# Conduit's interop suite: real MCP clients (Python SDK 2.x and 1.x, TypeScript SDK) against
# real servers (the fixture, @modelcontextprotocol/server-everything) directly and through a
# real standalone data plane, then the official conformance suite against the fixture
# directly and through the gateway. See README.md.
#
#   bash tests/interop/run.sh                 # everything
#   bash tests/interop/run.sh --only 'ts@*'   # the legs whose name matches a glob
#   bash tests/interop/run.sh --list          # the leg names
#
# Environment: CONDUIT_BIN_DIR (where conduit-data-plane and conduit-mcp-fixture are; default:
# cargo's target dir /debug, built here when stale), CONDUIT_INTEROP_CACHE (installed peers and
# logs; default target/interop).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${CONDUIT_INTEROP_CACHE:-$ROOT/target/interop}
LOGS="$CACHE/logs"
EXPECT="$HERE/expectations.json"
# Bound of one client run and of one conformance run.
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-90}
CONFORMANCE_TIMEOUT=${CONFORMANCE_TIMEOUT:-300}

CLIENTS=(mcp2-session mcp2-legacy mcp2-auto mcp1 ts)
TARGETS=(fixture-direct everything-direct gw-fixture gw-everything gw-fixture-stdio gw-everything-stdio gw-aggregate)

ONLY='*'
LIST=0
while [ $# -gt 0 ]; do
    case $1 in
    --only) ONLY=$2; shift 2 ;;
    --list) LIST=1; shift ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ "$LIST" = 1 ]; then
    for target in "${TARGETS[@]}"; do
        for client in "${CLIENTS[@]}"; do echo "$client@$target"; done
    done
    echo conformance
    exit 0
fi

# shellcheck source=scripts/deps.sh
. "$ROOT/scripts/deps.sh"
# shellcheck source=tests/interop/lib/install.sh
. "$HERE/lib/install.sh"
# shellcheck source=tests/interop/lib/processes.sh
. "$HERE/lib/processes.sh"

# --------------------------------------------------------------------------------------
# Peers and binaries
# --------------------------------------------------------------------------------------

ensure_interop_dependencies
install_peers

if [ -n "${CONDUIT_BIN_DIR:-}" ]; then
    BIN_DIR=$CONDUIT_BIN_DIR
else
    # A no-op when scripts/test.sh has just built every binary.
    (cd "$ROOT" && cargo build --quiet --bins -p conduit-data-plane -p conduit-mcp-fixture)
    BIN_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug"
fi
FIXTURE_BIN="$BIN_DIR/conduit-mcp-fixture"
DATA_PLANE_BIN="$BIN_DIR/conduit-data-plane"
for bin in "$FIXTURE_BIN" "$DATA_PLANE_BIN"; do
    [ -x "$bin" ] || { echo "interop: $bin is missing (cargo build --bins)" >&2; exit 1; }
done

rm -rf "$LOGS"
mkdir -p "$LOGS"
# ESM resolves packages from the script's location: the TS client runs next to node_modules.
cp "$HERE/clients/ts_client.mjs" "$CACHE/npm/ts_client.mjs"
export PYTHONDONTWRITEBYTECODE=1

# --------------------------------------------------------------------------------------
# Servers: the fixture and server-everything over HTTP, a data plane fronting them over HTTP
# and over stdio. Every listener is on 127.0.0.1.
# --------------------------------------------------------------------------------------

trap stop_all EXIT
trap 'exit 130' INT TERM

log "interop: starting the servers (logs in $LOGS)"
FIXTURE_PORT=$(free_port)
start fixture "$FIXTURE_BIN" --listen "127.0.0.1:$FIXTURE_PORT"
FIXTURE_PID=$LAST_PID

EVERYTHING_PORT=$(free_port)
# server-everything has no host setting and listens on every interface; loopback.cjs makes its
# listen() bind 127.0.0.1.
start everything env PORT="$EVERYTHING_PORT" "$NODE" --require "$HERE/loopback.cjs" "$EVERYTHING_JS" streamableHttp
EVERYTHING_PID=$LAST_PID

wait_http fixture "$FIXTURE_PID" "http://127.0.0.1:$FIXTURE_PORT/mcp"
wait_http everything "$EVERYTHING_PID" "http://127.0.0.1:$EVERYTHING_PORT/mcp"

GATEWAY_PORT=$(free_port)
ADMIN_PORT=$(free_port)
cat >"$LOGS/gateway.yaml" <<EOF
servers:
  - id: fixture
    url: http://127.0.0.1:$FIXTURE_PORT/mcp
  - id: everything
    url: http://127.0.0.1:$EVERYTHING_PORT/mcp
  - id: fixture-stdio
    transport: stdio
    command: $FIXTURE_BIN
    args: [--stdio]
  - id: everything-stdio
    transport: stdio
    command: $NODE
    args: [$EVERYTHING_JS, stdio]
EOF
start gateway "$DATA_PLANE_BIN" run --config "$LOGS/gateway.yaml" --node-id interop \
    --listen "127.0.0.1:$GATEWAY_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT"
wait_http gateway "$LAST_PID" "http://127.0.0.1:$ADMIN_PORT/readyz" 200
GATEWAY="http://127.0.0.1:$GATEWAY_PORT"

declare -A URL PROFILE
URL[fixture-direct]="http://127.0.0.1:$FIXTURE_PORT/mcp" PROFILE[fixture-direct]=fixture
URL[everything-direct]="http://127.0.0.1:$EVERYTHING_PORT/mcp" PROFILE[everything-direct]=everything
URL[gw-fixture]="$GATEWAY/mcp/fixture" PROFILE[gw-fixture]=fixture
URL[gw-everything]="$GATEWAY/mcp/everything" PROFILE[gw-everything]=everything
URL[gw-fixture-stdio]="$GATEWAY/mcp/fixture-stdio" PROFILE[gw-fixture-stdio]=fixture
URL[gw-everything-stdio]="$GATEWAY/mcp/everything-stdio" PROFILE[gw-everything-stdio]=everything
URL[gw-aggregate]="$GATEWAY/mcp" PROFILE[gw-aggregate]=aggregate


# --------------------------------------------------------------------------------------
# Client legs
# --------------------------------------------------------------------------------------

# client_command CLIENT: sets COMMAND to the command line of one interop client.
client_command() {
    case $1 in
    mcp2-*) COMMAND=("$CACHE/py-mcp2/bin/python" "$HERE/clients/mcp2_client.py" --mode "${1#mcp2-}") ;;
    mcp1) COMMAND=("$CACHE/py-mcp1/bin/python" "$HERE/clients/mcp1_client.py") ;;
    ts) COMMAND=("$NODE" "$CACHE/npm/ts_client.mjs") ;;
    esac
}

declare -A RESULT
PASSED=0 FAILED=0
log "interop: client legs"
for target in "${TARGETS[@]}"; do
    for client in "${CLIENTS[@]}"; do
        leg="$client@$target"
        # shellcheck disable=SC2053 # ONLY is a glob on purpose
        [[ $leg == $ONLY ]] || continue
        client_command "$client"
        started=$SECONDS
        if timeout --kill-after=5 "$CLIENT_TIMEOUT" "${COMMAND[@]}" --profile "${PROFILE[$target]}" \
            --expect "$EXPECT" "${URL[$target]}" >"$LOGS/$leg.log" 2>&1; then
            RESULT[$leg]=pass
            PASSED=$((PASSED + 1))
            echo "PASS $leg ($((SECONDS - started))s)"
        else
            RESULT[$leg]=FAIL
            FAILED=$((FAILED + 1))
            echo "FAIL $leg ($((SECONDS - started))s)"
            show_log "$leg"
        fi
    done
done

# --------------------------------------------------------------------------------------
# Conformance: the official suite against the fixture, direct and through /mcp/fixture
# --------------------------------------------------------------------------------------

CONFORMANCE=skip
# shellcheck disable=SC2053
if [[ conformance == $ONLY ]]; then
    log "interop: conformance suite, direct and through the gateway"
    # The suite's own launcher is `#!/usr/bin/env node`: node 22 goes first on PATH.
    export PATH="${NODE%/*}:$PATH"
    node "$CONFORMANCE_JS" list >"$LOGS/conformance-list.txt" 2>&1
    # The server scenarios of every suite (active and pending).
    sed -n '/^Server scenarios/,/^$/p' "$LOGS/conformance-list.txt" |
        sed -n 's/^ *- \([^ ]*\).*/\1/p' >"$LOGS/conformance-scenarios.txt"
    for side in direct gateway; do
        url=${URL[fixture-direct]}
        [ "$side" = gateway ] && url=${URL[gw-fixture]}
        # Exits non-zero when a scenario fails; the comparison below is the verdict.
        timeout --kill-after=5 "$CONFORMANCE_TIMEOUT" node "$CONFORMANCE_JS" server --url "$url" \
            --suite all -o "$LOGS/conformance-$side" >"$LOGS/conformance-$side.log" 2>&1 || true
    done
    if python3 "$HERE/conformance_compare.py" --scenarios "$LOGS/conformance-scenarios.txt" \
        --direct "$LOGS/conformance-direct" --gateway "$LOGS/conformance-gateway" \
        --expected "$HERE/conformance-expected-failures.txt"; then
        CONFORMANCE=pass
    else
        CONFORMANCE=FAIL
    fi
fi

# --------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------

log "interop: summary"
printf '%-22s' target
printf ' %-13s' "${CLIENTS[@]}"
printf '\n'
for target in "${TARGETS[@]}"; do
    printf '%-22s' "$target"
    for client in "${CLIENTS[@]}"; do printf ' %-13s' "${RESULT[$client@$target]:--}"; done
    printf '\n'
done
echo "conformance (direct vs via gateway): $CONFORMANCE"
[ "$CONFORMANCE" = FAIL ] && FAILED=$((FAILED + 1))
[ "$CONFORMANCE" = pass ] && PASSED=$((PASSED + 1))
echo "interop: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
