#!/usr/bin/env bash
# Where the server's layers spend their time: the verify floor
# (bench-verify-floor: the check, usage counting and answer on a bare axum
# server) and the server (`assetpool serve`) under the same load, each
# recorded with `perf record -F 2000 -g` for 10 s, and their samples per
# request compared by group of functions (see BENCHMARKS.md, "The verify
# floor"). Needs perf, wrk, taskset and release binaries.
#
#   bench/floor_profile.sh [BIN]      # BIN: folder of the release binaries (target/release)
#
# Environment: SERVER_CORE [0], LOAD_CORE [1], CONNECTIONS [64], KEEP [0].
# The figures are samples, not counts: one pair of runs differs from the next
# by about a tenth of a microsecond per group.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="${1:-${CARGO_TARGET_DIR:-target}/release}"
SERVER_CORE="${SERVER_CORE:-0}"
LOAD_CORE="${LOAD_CORE:-1}"
CONNECTIONS="${CONNECTIONS:-64}"
KEEP="${KEEP:-0}"
ISSUER="http://bench.assetpool.test"
PORT=18480
for tool in perf wrk taskset; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not installed" >&2; exit 1; }
done
for binary in assetpool bench-seed bench-verify-floor; do
  [ -x "$BIN/$binary" ] || { echo "$BIN/$binary is missing: build the release binaries first" >&2; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/assetpool-floor-profile.XXXXXX")"
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then echo "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

"$BIN/bench-seed" --database "sqlite://$WORK/bench.db" --count 1000 --sample 10000 \
  --out "$WORK/seed" --issuer "$ISSUER" | grep '^seeded'

wrk_run() { # wrk_run SECONDS: load on the load core
  PAIRS="$WORK/seed/pairs.txt" taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d"$1s" \
    -s "$ROOT/bench/resource.lua" "http://127.0.0.1:$PORT/v1/resource"
}

# profile NAME COMMAND...: warms the server up, then records 10 s of a 12 s run.
profile() {
  local name="$1" line
  shift
  taskset -c "$SERVER_CORE" "$@" >"$WORK/$name.log" 2>&1 &
  SERVER_PID=$!
  until grep -q "listening on" "$WORK/$name.log" 2>/dev/null; do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; exit 1; }
    sleep 0.05
  done
  wrk_run 5 >/dev/null
  wrk_run 12 | grep '^RESULT' >"$WORK/$name.result" &
  local load=$!
  sleep 1
  perf record -F 2000 -g -o "$WORK/$name.data" -p "$SERVER_PID" -- sleep 10 >/dev/null 2>&1
  wait "$load"
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  line="$(cat "$WORK/$name.result")"
  echo "$name: $line"
  perf report -i "$WORK/$name.data" --no-children --sort symbol --stdio -g none -n 2>/dev/null |
    grep -v '^#' | grep '%' >"$WORK/$name.samples"
}

profile floor "$BIN/bench-verify-floor" --database "sqlite://$WORK/bench.db" --issuer "$ISSUER" \
  --listen "127.0.0.1:$PORT"
profile server "$BIN/assetpool" serve --database "sqlite://$WORK/bench.db" --issuer "$ISSUER" \
  --listen "127.0.0.1:$PORT" --environment production

python3 - "$WORK" <<'PYTHON'
import re
import sys

work = sys.argv[1]
# Groups of functions, first match wins; kernel symbols are one group.
GROUPS = [
    ("the request span (tracing)", r"tracing|sharded_slab|DisplayValue|core::fmt::write|RequestIdText"),
    ("allocator", r"^_?mi_|mi_free|malloc|realloc"),
    ("clock reads", r"clock_gettime|Timespec|Instant"),
    ("listener and watchdog", r"listener::|Tracked|Activity|RequestGuard|Guarded"),
    ("metrics", r"metrics::"),
    ("observe and own routes' layers", r"middleware::|percent_encoding|contains_control|security_headers|no_store"),
    ("routing (tower, axum's boxed route services)", r"tower::|Oneshot|MapFuture|BoxCloneSync|axum::routing|Router|Route"),
    ("hyper", r"hyper"),
    ("header maps", r"http::header"),
    ("the check (core, credentials, caches, SHA-256)", r"assetpool_core|credentials|quick_cache|sha2|hashbrown|crc32|usage"),
]


def rate(name):
    line = open(f"{work}/{name}.result").read()
    return float(re.search(r"rps=(\d+)", line).group(1))


def groups(name):
    # ns per request: samples at 2,000 Hz over 10 s, divided by the requests of those 10 s.
    requests = rate(name) * 10
    totals = {}
    for line in open(f"{work}/{name}.samples"):
        match = re.match(r"\s*[\d.]+%\s+(\d+)\s+\[(.)\]\s+(.*)", line)
        if not match:
            continue
        samples, kind, symbol = int(match.group(1)), match.group(2), match.group(3)
        group = "kernel"
        if kind != "k":
            group = next((label for label, pattern in GROUPS if re.search(pattern, symbol)),
                         "other user-space code")
        totals[group] = totals.get(group, 0) + samples / 2000 / requests * 1e9
    return totals


floor, server = groups("floor"), groups("server")
print(f"\n{'ns per request':50} {'floor':>8} {'server':>8} {'difference':>10}")
labels = sorted(set(floor) | set(server), key=lambda g: floor.get(g, 0) - server.get(g, 0))
for label in labels:
    a, b = floor.get(label, 0), server.get(label, 0)
    print(f"{label:50} {a:8.0f} {b:8.0f} {b - a:+10.0f}")
a, b = sum(floor.values()), sum(server.values())
print(f"{'all':50} {a:8.0f} {b:8.0f} {b - a:+10.0f}")
PYTHON
