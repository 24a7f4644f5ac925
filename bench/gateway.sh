#!/usr/bin/env bash
# What the reverse proxy costs, side by side with nginx on the same cores, in
# one unattended run (release builds, 127.0.0.1 only, wrk). Not part of CI.
#
#   bench/gateway.sh [SECONDS] [CONNECTIONS]     (defaults: 10 s, 32 connections)
#
# Measured, in this order, ROUNDS times (the rounds alternate the six, so
# a load that comes and goes on the machine touches all of them alike):
#   a) upstream     the small upstream (examples/echo_upstream.rs), asked directly;
#   b) nginx        nginx proxy_pass to it, no check (the peer to match);
#   f) hyper        bench-proxy-ceiling: a bare axum server forwarding to it
#                   through hyper-util's pooled client, as serve --upstream
#                   does, with no check and no header rewriting (the ceiling
#                   of the HTTP stack the gateway is built on);
#   c) serve        `assetpool serve --upstream` to it (checks key and token);
#   d) auth_request nginx auth_request through assetpool's /auth/verify, then
#                   proxy_pass to it (docs/gateway/nginx-auth-request.conf);
#   e) check        assetpool's own GET /v1/resource (the check alone).
# Every request is `GET /plain` (or /v1/resource) with x-api-key and x-api-token.
#
# Settings (environment):
#   ROUNDS=2            rounds of the six measurements
#   WARMUP=2            seconds of warm-up per target before the first round
#   SERVER_CORE=0       core of the upstream, assetpool and nginx (taskset)
#   LOAD_CORE=1         core of wrk
#   WRK_THREADS=1       wrk threads (wrk --latency -t1 -cCONNECTIONS)
# nginx runs with worker_processes 1, access_log off, keep-alive connections
# to the upstream and to assetpool (`keepalive 32`, proxy_http_version 1.1,
# Connection ""), in a prefix of its own under the work folder (pid, logs and
# temp paths; nothing under /etc/nginx or /var/log is used). assetpool runs on
# SQLite in the work folder with its default log level (no line per request).
#
# Reported per measurement: requests/s, p50 and p99 latency, and the
# server side's CPU time per request: utime + stime (/proc/PID/stat) over the
# run of every process that serves it (upstream; + nginx's worker; +
# assetpool), divided by the requests served. Then the mean of each over the
# rounds, and the ratios serve / nginx and auth_request / nginx per round.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-32}"
ROUNDS="${ROUNDS:-2}"
WARMUP="${WARMUP:-2}"
SERVER_CORE="${SERVER_CORE:-0}"
LOAD_CORE="${LOAD_CORE:-1}"
THREADS="${WRK_THREADS:-1}"
PASSWORD="bench password that is long enough"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

for tool in nginx taskset curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is not installed" >&2; exit 1; }
done
if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is not installed; installing it (apt-get install -y wrk)" >&2
  apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
fi

echo "== building release binaries"
cargo build --release -q -p assetpool-server --bin assetpool --example echo_upstream
cargo build --release -q -p assetpool-bench --bin bench-proxy-ceiling
ASSETPOOL="$TARGET_DIR/release/assetpool"
PROXY_CEILING_BIN="$TARGET_DIR/release/bench-proxy-ceiling"
UPSTREAM_BIN="$TARGET_DIR/release/examples/echo_upstream"

WORK="$(mktemp -d /tmp/assetpool-gateway.XXXXXX)"
PIDS=()
NGINX_PID=""
cleanup() {
  # nginx's master stops its worker on SIGTERM.
  if [ -n "$NGINX_PID" ]; then kill -TERM "$NGINX_PID" 2>/dev/null || true; fi
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

# A TCP port nothing listens on (for nginx, which needs one in its config).
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 30000))
    if ! ss -Hltn "sport = :$port" | grep -q .; then
      echo "$port"
      return
    fi
  done
  echo "error: no free port found" >&2
  exit 1
}

# Waits until 127.0.0.1:PORT accepts connections.
wait_for_port() {
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$1/"; then return; fi
    sleep 0.1
  done
  echo "error: nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

DATABASE="sqlite://$WORK/bench.db"
KEY="$("$ASSETPOOL" keys create --name bench --env prod --json --database "$DATABASE" \
  | sed -n 's/.*"key": *"\([^"]*\)".*/\1/p')"
echo "$PASSWORD" | "$ASSETPOOL" users create --email bench@example.com --password-stdin \
  --database "$DATABASE" >/dev/null

taskset -c "$SERVER_CORE" "$UPSTREAM_BIN" 127.0.0.1:0 >"$WORK/upstream.out" 2>&1 &
UPSTREAM_PID=$!
PIDS+=("$UPSTREAM_PID")
UPSTREAM="$(listening_address "$WORK/upstream.out")"

taskset -c "$SERVER_CORE" "$ASSETPOOL" serve --database "$DATABASE" --listen 127.0.0.1:0 \
  --upstream "http://$UPSTREAM" --log-format json >"$WORK/proxy.out" 2>"$WORK/proxy.log" &
ASSETPOOL_PID=$!
PIDS+=("$ASSETPOOL_PID")
PROXY="$(listening_address "$WORK/proxy.out")"

taskset -c "$SERVER_CORE" "$PROXY_CEILING_BIN" "http://$UPSTREAM" 127.0.0.1:0 \
  >"$WORK/hyper.out" 2>&1 &
HYPER_PID=$!
PIDS+=("$HYPER_PID")
HYPER="$(listening_address "$WORK/hyper.out")"

# nginx: the documented auth_request configuration (its ports, paths and log
# rewritten, one worker), plus a server that only proxies to the upstream.
NGINX_DIR="$WORK/nginx"
mkdir -p "$NGINX_DIR"
PLAIN_PORT="$(free_port)"
AUTH_PORT="$(free_port)"
while [ "$AUTH_PORT" = "$PLAIN_PORT" ]; do AUTH_PORT="$(free_port)"; done
DOCUMENTED=docs/gateway/nginx-auth-request.conf
test "$(tail -n 1 "$DOCUMENTED")" = "}" || { echo "error: $DOCUMENTED does not end its http block on the last line" >&2; exit 1; }
for line in "worker_processes auto;" "pid /run/nginx-gateway.pid;" "error_log /var/log/nginx/gateway-error.log warn;" \
  "access_log /var/log/nginx/gateway-access.log gateway;" "server 127.0.0.1:8080;" "server 127.0.0.1:9000;" "listen 8000;"; do
  grep -qF "$line" "$DOCUMENTED" || { echo "error: '$line' is no longer in $DOCUMENTED" >&2; exit 1; }
done
{
  sed -e '$d' \
    -e "s|worker_processes auto;|worker_processes 1;|" \
    -e "s|pid /run/nginx-gateway.pid;|pid $NGINX_DIR/nginx.pid;|" \
    -e "s|error_log /var/log/nginx/gateway-error.log warn;|error_log $NGINX_DIR/error.log warn;|" \
    -e "s|access_log /var/log/nginx/gateway-access.log gateway;|access_log off;|" \
    -e "s|server 127.0.0.1:8080;|server $PROXY;|" \
    -e "s|server 127.0.0.1:9000;|server $UPSTREAM;|" \
    -e "s|listen 8000;|listen 127.0.0.1:$AUTH_PORT;|" \
    -e "s|^http {|http {\n    client_body_temp_path $NGINX_DIR/body;\n    proxy_temp_path $NGINX_DIR/proxy;\n    fastcgi_temp_path $NGINX_DIR/fastcgi;\n    uwsgi_temp_path $NGINX_DIR/uwsgi;\n    scgi_temp_path $NGINX_DIR/scgi;|" \
    "$DOCUMENTED"
  cat <<EOF

    # The peer: nginx proxying to the same upstream, no check.
    server {
        listen 127.0.0.1:$PLAIN_PORT;
        location / {
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$NGINX_DIR/nginx.conf"
taskset -c "$SERVER_CORE" nginx -p "$NGINX_DIR" -e "$NGINX_DIR/error.log" -c "$NGINX_DIR/nginx.conf" \
  -g "daemon off;" >"$NGINX_DIR/stdout" 2>&1 &
NGINX_PID=$!
wait_for_port "$PLAIN_PORT"
wait_for_port "$AUTH_PORT"
NGINX_WORKER="$(pgrep -P "$NGINX_PID" | head -n 1 || true)"
test -n "$NGINX_WORKER" || { echo "error: nginx has no worker" >&2; cat "$NGINX_DIR/error.log" >&2; exit 1; }

TOKEN="$(curl -sf -X POST "http://$PROXY/api/authentication/login" \
  -H "Content-Type: application/json" -H "x-api-key: $KEY" \
  -d "{\"username\": \"bench@example.com\", \"password\": \"$PASSWORD\"}" \
  | sed -n 's/.*"accessToken":"\([^"]*\)".*/\1/p')"
test -n "$TOKEN" || { echo "error: login failed" >&2; exit 1; }

# Names, URLs and server-side processes of the six measurements.
NAMES=(upstream nginx hyper serve auth_request check)
URLS=("http://$UPSTREAM/plain" "http://127.0.0.1:$PLAIN_PORT/plain" "http://$HYPER/plain"
  "http://$PROXY/plain" "http://127.0.0.1:$AUTH_PORT/plain" "http://$PROXY/v1/resource")
SERVERS=("$UPSTREAM_PID" "$UPSTREAM_PID $NGINX_WORKER" "$UPSTREAM_PID $HYPER_PID"
  "$UPSTREAM_PID $ASSETPOOL_PID" "$UPSTREAM_PID $NGINX_WORKER $ASSETPOOL_PID" "$ASSETPOOL_PID")

status() {
  curl -s -o /dev/null -w '%{http_code}' "$1" "${@:2}"
}
for index in "${!NAMES[@]}"; do
  got="$(status "${URLS[$index]}" -H "x-api-key: $KEY" -H "x-api-token: $TOKEN")"
  test "$got" = 200 || { echo "error: ${NAMES[$index]} answered $got" >&2; exit 1; }
done
# The checks do refuse: no token, no passage.
test "$(status "${URLS[3]}" -H "x-api-key: $KEY")" = 401 || { echo "error: serve let a request without token through" >&2; exit 1; }
test "$(status "${URLS[4]}" -H "x-api-key: $KEY")" = 401 || { echo "error: auth_request let a request without token through" >&2; exit 1; }

CLOCK_TICKS="$(getconf CLK_TCK)"
# CPU ticks (utime + stime) used so far by the processes given.
cpu_ticks() {
  local total=0 pid fields
  for pid in "$@"; do
    # The fields after the command name, which may hold spaces: utime is the 12th, stime the 13th.
    fields="$(sed 's/.*) //' "/proc/$pid/stat")"
    total=$((total + $(echo "$fields" | awk '{print $12 + $13}')))
  done
  echo "$total"
}

# Latency from wrk (e.g. 512.00us, 1.20ms, 1.01s) in microseconds.
to_us() {
  awk -v value="$1" 'BEGIN {
    unit = value; sub(/^[0-9.]+/, "", unit); number = value + 0
    if (unit == "us") print number; else if (unit == "ms") print number * 1000;
    else if (unit == "s") print number * 1000000; else if (unit == "m") print number * 60000000;
    else print "nan" }'
}

# run_wrk INDEX SECONDS OUT: wrk on the client core against measurement INDEX;
# prints "req/s p50_us p99_us cpu_us_per_request".
run_wrk() {
  local index="$1" seconds="$2" out="$3" before after requests
  # shellcheck disable=SC2086 # the list of pids is split on purpose
  before="$(cpu_ticks ${SERVERS[$index]})"
  timeout $((seconds + 60)) taskset -c "$LOAD_CORE" wrk --latency -t"$THREADS" -c"$CONNECTIONS" \
    -d"${seconds}s" -H "x-api-key: $KEY" -H "x-api-token: $TOKEN" "${URLS[$index]}" >"$out"
  # shellcheck disable=SC2086
  after="$(cpu_ticks ${SERVERS[$index]})"
  if grep -q 'Non-2xx\|Socket errors' "$out"; then
    echo "warning: ${NAMES[$index]}: $(grep 'Non-2xx\|Socket errors' "$out" | tr -s ' ')" >&2
  fi
  requests="$(awk '/requests in/ {print $1}' "$out")"
  echo "$(awk '/^Requests\/sec:/ {print $2}' "$out")" \
    "$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")" \
    "$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")" \
    "$(awk -v ticks=$((after - before)) -v hz="$CLOCK_TICKS" -v n="$requests" \
      'BEGIN { printf "%.2f", ticks / hz * 1000000 / n }')"
}

echo "== warm-up: ${WARMUP}s per target"
for index in "${!NAMES[@]}"; do
  run_wrk "$index" "$WARMUP" "$WORK/warmup.txt" >/dev/null
done

echo "== $ROUNDS rounds of ${DURATION}s per measurement, $CONNECTIONS connections, wrk -t$THREADS on core $LOAD_CORE, servers on core $SERVER_CORE"
RESULTS="$WORK/results.txt"
for round in $(seq 1 "$ROUNDS"); do
  for index in "${!NAMES[@]}"; do
    line="$(run_wrk "$index" "$DURATION" "$WORK/$round-${NAMES[$index]}.txt")"
    echo "$round ${NAMES[$index]} $line" >>"$RESULTS"
    printf 'round %s  %-13s %s\n' "$round" "${NAMES[$index]}" "$line"
  done
done

echo
echo "upstream $UPSTREAM; hyper proxy $HYPER; assetpool $PROXY; nginx (one worker) plain :$PLAIN_PORT, auth_request :$AUTH_PORT"
echo "rounds: $ROUNDS x ${DURATION}s, $CONNECTIONS connections"
echo
awk '
  { rps[$2] += $3; p50[$2] += $4; p99[$2] += $5; cpu[$2] += $6; n[$2]++; by[$1, $2] = $3 }
  $1 > rounds { rounds = $1 }
  END {
    printf "| %-28s | %10s | %9s | %9s | %13s |\n", "measurement (mean of rounds)", "req/s", "p50 µs", "p99 µs", "server CPU µs/req"
    printf "|%s|%s:|%s:|%s:|%s:|\n", "------------------------------", "------------", "-----------", "-----------", "--------------------"
    split("upstream nginx hyper serve auth_request check", order, " ")
    label["upstream"] = "a) upstream directly"
    label["nginx"] = "b) nginx proxy_pass"
    label["hyper"] = "f) hyper proxy, no check"
    label["serve"] = "c) serve --upstream"
    label["auth_request"] = "d) nginx auth_request"
    label["check"] = "e) /v1/resource (check)"
    for (i = 1; i <= 6; i++) {
      name = order[i]
      printf "| %-28s | %10.0f | %9.0f | %9.0f | %17.2f |\n", label[name], rps[name] / n[name], p50[name] / n[name], p99[name] / n[name], cpu[name] / n[name]
    }
    printf "\n"
    for (r = 1; r <= rounds; r++) {
      printf "round %d: serve / nginx %.3f   auth_request / nginx %.3f   hyper / nginx %.3f   serve / hyper %.3f   nginx / upstream %.3f\n", r,
        by[r, "serve"] / by[r, "nginx"], by[r, "auth_request"] / by[r, "nginx"], by[r, "hyper"] / by[r, "nginx"],
        by[r, "serve"] / by[r, "hyper"], by[r, "nginx"] / by[r, "upstream"]
    }
    printf "means:   serve / nginx %.3f   auth_request / nginx %.3f   hyper / nginx %.3f   serve / hyper %.3f   (req/s)\n",
      rps["serve"] / rps["nginx"], rps["auth_request"] / rps["nginx"], rps["hyper"] / rps["nginx"], rps["serve"] / rps["hyper"]
    printf "CPU µs/request: serve - nginx %+.2f   auth_request - nginx %+.2f   hyper - nginx %+.2f   serve - hyper %+.2f   (server side, means)\n",
      (cpu["serve"] - cpu["nginx"]) / n["serve"], (cpu["auth_request"] - cpu["nginx"]) / n["auth_request"],
      (cpu["hyper"] - cpu["nginx"]) / n["hyper"], (cpu["serve"] - cpu["hyper"]) / n["serve"]
  }' "$RESULTS"
