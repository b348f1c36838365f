#!/usr/bin/env bash
# Propagation latency of a config change: Apply -> every data plane ACKed, for fleets of
# 1, 10 and 100 real data-plane processes on 127.0.0.1 (release build). Prints p50/p99/max.
#
#   bash bench/propagation.sh                      # sizes 1,10,100; 100 rollouts each
#   bash bench/propagation.sh --sizes 1,10 --rounds 30
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_INCREMENTAL=0
cargo build --release --workspace --bins

# 100 data planes hold a few sockets each; make sure the descriptor limit is not the bench.
ulimit -n 8192 2>/dev/null || true

exec target/release/conduit-bench-propagation "$@"
