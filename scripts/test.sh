#!/usr/bin/env bash
# The whole Conduit test suite: the README's test command and what CI runs (.ci/run).
#
#   bash scripts/test.sh
#
# Installs what the tests need when it is missing, then: rustfmt check, the layers of both
# planes (scripts/check_layers.py, ARCHITECTURE.md), the shell syntax of every script (the
# benchmarks are not run here), clippy with warnings denied, a build of every binary (the
# end-to-end tests run the real binaries),
# every test of the workspace, and the interop suite (tests/interop/run.sh: real MCP SDK
# clients and servers and the official conformance suite, through a real data plane).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
ensure_test_dependencies

# --------------------------------------------------------------------------------------
# Checks and tests
# --------------------------------------------------------------------------------------

export CARGO_INCREMENTAL=0
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log "cargo fmt --check"
cargo fmt --all -- --check

log "layers of both planes (ARCHITECTURE.md)"
python3 scripts/check_layers.py

log "shell syntax of the scripts"
for script in .ci/run scripts/*.sh bench/*.sh tests/interop/*.sh; do
    bash -n "$script"
done

log "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets -- -D warnings

# The end-to-end tests start these binaries as processes; build them with the test profile.
log "cargo build --workspace --bins"
cargo build --workspace --bins

if cargo nextest --version >/dev/null 2>&1; then
    log "cargo nextest run --workspace"
    cargo nextest run --workspace --no-fail-fast
    log "cargo test --doc --workspace"
    cargo test --doc --workspace
else
    log "cargo test --workspace"
    cargo test --workspace --no-fail-fast
fi

# Real MCP clients, servers and the official conformance suite through a real data plane.
log "interop suite"
bash tests/interop/run.sh

log "all checks passed"
