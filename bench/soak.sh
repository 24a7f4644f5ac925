#!/usr/bin/env bash
# Soak test with faults (BENCHMARKS.md, "Soak test with faults"). One command:
#
#   bench/soak.sh [--duration SECONDS] [--bin PATH] [--keep] [-- soak.py options]
#
# Starts, in a temporary folder that is removed on exit:
#   - a PostgreSQL instance of its own (initdb, a free port), so that restarting it
#     disturbs nothing else;
#   - a TCP proxy (bench/soak.py, asyncio) between node 1 and PostgreSQL, which can cut
#     that node's database link (closing its connections, or passing no byte);
#   - three `assetpool serve` nodes (--max-staleness 5), nginx in front (round robin);
# then runs a mixed workload for --duration seconds (default 600): logins, verifies
# (/v1/resource and /auth/verify), refreshes, deliberate refresh-token reuse (on one
# node, and one token presented to two nodes at once), logouts, key revocations,
# rotations with grace 0, disables and enables, and admin changes, while it kills a
# node with kill -9 and restarts it, restarts PostgreSQL, and cuts node 1's database
# link for 8 s, one fault at a time, in turn.
#
# It asserts, and exits 1 on any violation:
#   - no 5xx but documented 503s with Retry-After during a database fault (and nginx's
#     502 for a request that was on a killed node); no panic; exit 0 on SIGTERM;
#   - no revoked, rotated-out or disabled credential (key or token) accepted by any node,
#     probed directly, more than a second after the change was acknowledged (a node cut
#     from the database may serve from memory for --max-staleness, as documented);
#   - no refresh token honoured twice, also when presented to two nodes at once;
#   - usage totals (`assetpool keys usage`) against the successes the driver counted:
#     none counted twice, none lost but what a kill -9 may lose (the killed node's
#     answers within one flush interval, 5 s, plus 1 s, before the kill);
#   - every node serving again after each fault (/readyz and a protected request; time to
#     recovery printed).
#
# --bin defaults to target/release/assetpool (CARGO_TARGET_DIR respected). Needs
# python3 (3.11 standard library), nginx and PostgreSQL's server binaries (Debian:
# postgresql); run as root, PostgreSQL runs as the `postgres` user.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=600
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/assetpool"
KEEP=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "usage: bench/soak.sh [--duration SECONDS] [--bin PATH] [--keep] [-- soak.py options]" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "error: no assetpool binary at $BIN (--bin PATH)" >&2; exit 2; }

if ! command -v nginx >/dev/null 2>&1; then
  apt-get install -y -q nginx >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q nginx >/dev/null; } ||
    { echo "error: nginx is missing and could not be installed" >&2; exit 1; }
fi
# shellcheck source=bench/lib.sh
. bench/lib.sh
require_initdb
make_work soak

PYTHONDONTWRITEBYTECODE=1 python3 bench/soak.py --duration "$DURATION" --bin "$BIN" --work "$WORK" ${EXTRA[@]+"${EXTRA[@]}"}
