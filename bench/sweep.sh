#!/usr/bin/env bash
# Node-count sweep (docs/SCALING.md). One command:
#
#   bench/sweep.sh [--bin PATH] [--counts "1 2 4 8 16"] [--keep] [-- sweep.py options]
#
# Starts a PostgreSQL instance of its own (initdb, a free port) in a temporary folder
# that is removed on exit, and for each node count starts that many `assetpool serve`
# processes on a fresh database of it, then measures:
#   - change-feed latency: a key revoked through node 1's admin API, every other node
#     polled directly until it refuses the key (p50 and max over 7 revocations);
#   - database connections (pg_stat_activity of that database), idle and under load;
#   - database transactions and rows written (inserted + updated + deleted) per second
#     (pg_stat_database deltas), idle and under a small fixed load (100 verifies/s and
#     one login + refresh + logout per second, spread over the nodes);
#   - CPU per node (utime + stime from /proc/PID/stat, per second) and RSS per node.
# Prints a markdown table. Takes about a minute per node count.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/assetpool"
KEEP=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    --counts) EXTRA+=(--counts "$2"); shift 2 ;;
    --keep) KEEP=1; shift ;;
    --) shift; EXTRA+=("$@"); break ;;
    *) echo "usage: bench/sweep.sh [--bin PATH] [--counts \"1 2 4 8 16\"] [--keep] [-- sweep.py options]" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "error: no assetpool binary at $BIN (--bin PATH)" >&2; exit 2; }
# shellcheck source=bench/lib.sh
. bench/lib.sh
require_initdb
make_work sweep

PYTHONDONTWRITEBYTECODE=1 python3 bench/sweep.py --bin "$BIN" --work "$WORK" ${EXTRA[@]+"${EXTRA[@]}"}
