#!/usr/bin/env bash
# What the reverse proxy costs: requests/s of a tiny upstream asked directly,
# and through `assetpool serve --upstream` (which checks the API key and token
# of every request first). Release builds, 127.0.0.1, wrk. Not part of CI.
#
#   bench/gateway.sh [SECONDS] [CONNECTIONS]     (defaults: 10 s, 32 connections)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-32}"
THREADS="${WRK_THREADS:-2}"
PASSWORD="bench password that is long enough"

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is not installed; installing it (apt-get install -y wrk)" >&2
  apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
fi

echo "== building release binaries"
cargo build --release -q -p assetpool-server --bin assetpool --example echo_upstream
ASSETPOOL=target/release/assetpool
UPSTREAM_BIN=target/release/examples/echo_upstream

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Waits until FILE has a "listening on http://ADDR" line and prints ADDR.
listening_address() {
  local file="$1"
  for _ in $(seq 1 100); do
    if grep -q '^listening on ' "$file" 2>/dev/null; then
      sed -n 's/^listening on http:\/\///p' "$file" | head -n 1
      return
    fi
    sleep 0.1
  done
  echo "error: no 'listening on' line in $file" >&2
  exit 1
}

DATABASE="sqlite://$WORK/bench.db"
KEY="$("$ASSETPOOL" keys create --name bench --env prod --json --database "$DATABASE" \
  | sed -n 's/.*"key": *"\([^"]*\)".*/\1/p')"
echo "$PASSWORD" | "$ASSETPOOL" users create --email bench@example.com --password-stdin \
  --database "$DATABASE" >/dev/null

"$UPSTREAM_BIN" 127.0.0.1:0 >"$WORK/upstream.out" 2>&1 &
PIDS+=($!)
UPSTREAM="$(listening_address "$WORK/upstream.out")"

"$ASSETPOOL" serve --database "$DATABASE" --listen 127.0.0.1:0 --upstream "http://$UPSTREAM" \
  --log-format json >"$WORK/proxy.out" 2>"$WORK/proxy.log" &
PIDS+=($!)
PROXY="$(listening_address "$WORK/proxy.out")"

TOKEN="$(curl -sf -X POST "http://$PROXY/api/authentication/login" \
  -H "Content-Type: application/json" -H "x-api-key: $KEY" \
  -d "{\"username\": \"bench@example.com\", \"password\": \"$PASSWORD\"}" \
  | sed -n 's/.*"accessToken":"\([^"]*\)".*/\1/p')"
test -n "$TOKEN" || { echo "error: login failed" >&2; exit 1; }
test "$(curl -s -o /dev/null -w '%{http_code}' "http://$PROXY/plain" -H "x-api-key: $KEY" -H "x-api-token: $TOKEN")" = 200

run_wrk() {
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
    -H "x-api-key: $KEY" -H "x-api-token: $TOKEN" "$1" | tee "$2" >&2
  awk '/^Requests\/sec:/ {print $2}' "$2"
}

echo "== upstream directly: http://$UPSTREAM/plain (${DURATION}s, $CONNECTIONS connections)"
DIRECT="$(run_wrk "http://$UPSTREAM/plain" "$WORK/direct.txt")"
echo "== through assetpool --upstream: http://$PROXY/plain"
PROXIED="$(run_wrk "http://$PROXY/plain" "$WORK/proxied.txt")"
echo "== assetpool's own /v1/resource (the check alone, no forwarding): http://$PROXY/v1/resource"
CHECK_ONLY="$(run_wrk "http://$PROXY/v1/resource" "$WORK/check.txt")"

echo
echo "check alone (/v1/resource): $CHECK_ONLY requests/s"
echo "upstream directly:           $DIRECT requests/s"
echo "through assetpool proxy:     $PROXIED requests/s"
awk -v direct="$DIRECT" -v proxied="$PROXIED" \
  'BEGIN { printf "ratio proxied/direct:        %.2f\n", proxied / direct }'
