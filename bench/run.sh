#!/usr/bin/env bash
# The performance benchmark of assetpool (see BENCHMARKS.md). One command:
#
#   bench/run.sh
#
# Builds release binaries, then in one run measures on 127.0.0.1, with the
# server pinned to one core and the load generator to another:
#   - the HTTP ceiling: GET /v1/resource on a bare axum server (bench-ceiling),
#     measured right before the server at each N, so each ratio compares
#     two runs made side by side;
#   - GET /v1/resource on assetpool (valid key + token, spread over SAMPLE
#     pairs) for each N of SIZES, on a database seeded with N applications,
#     keys, users and live sessions through the storage bulk path;
#   - start-up time and peak RSS of the server for each N, and the storage
#     reads made by the verify path during the measurement (from /metrics);
#   - logins/s against the Argon2id bound of this machine, and how fast
#     excess logins are refused with 503 overloaded;
#   - how long `assetpool keys revoke` takes to reach a running server;
#   - at the smallest N, the ceiling, the verify floor (the check alone on a
#     bare axum server) and the server in alternating rounds: what verify
#     costs above bare HTTP, split into the check and the server's layers;
#   - at the largest N, the ceiling and the server on both cores, with wrk
#     (two threads) sharing them: the scaling factor over one core.
# Prints a table and writes it into BENCHMARKS.md between the "generated"
# markers (the rest of the file is left as it is).
#
# Environment (defaults in brackets): SIZES ["1000 1000000"], DURATION [15]
# seconds per measured wrk run, WARMUP [5], CONNECTIONS [64], SAMPLE [10000]
# key/token pairs, SERVER_CORE [0], LOAD_CORE [1], LOGIN_SECONDS [10],
# PROFILE [0] (1: perf record the server during the verify run of the largest N
# and add its top symbols to the output; perf slows that run down),
# WRITE_MD [1] (0: do not touch BENCHMARKS.md), KEEP [0] (1: keep the work folder),
# USAGE_ROUNDS [2] (rounds of the usage-tracking comparison at the smallest N:
# each round measures the server with --usage-tracking false, then true; 0: skip),
# FLOOR_ROUNDS [2] (rounds at the smallest N, each measuring the ceiling, the
# verify floor (bench-verify-floor: the check, its usage counting and the answer
# without the server's layers) and the server, one after the other, the order
# reversed in even rounds; 0: skip),
# SCALE [1] (0: skip the two-core measurement).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

SIZES="${SIZES:-1000 1000000}"
DURATION="${DURATION:-15}"
WARMUP="${WARMUP:-5}"
CONNECTIONS="${CONNECTIONS:-64}"
SAMPLE="${SAMPLE:-10000}"
SERVER_CORE="${SERVER_CORE:-0}"
LOAD_CORE="${LOAD_CORE:-1}"
LOGIN_SECONDS="${LOGIN_SECONDS:-10}"
PROFILE="${PROFILE:-0}"
WRITE_MD="${WRITE_MD:-1}"
KEEP="${KEEP:-0}"
USAGE_ROUNDS="${USAGE_ROUNDS:-2}"
LIMITS_ROUNDS="${LIMITS_ROUNDS:-1}"
REDIS_PORT="${REDIS_PORT:-18379}"
SCALE="${SCALE:-1}"
FLOOR_ROUNDS="${FLOOR_ROUNDS:-2}"
ISSUER="http://bench.assetpool.test"
SERVER_PORT=18080
CEILING_PORT=18090
FLOOR_PORT=18092

for tool in wrk taskset curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "== installing $tool" >&2
    apt-get install -y -q "$tool" >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get install -y -q "$tool" >/dev/null; }
  fi
done

WORK="$(mktemp -d /tmp/assetpool-bench.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then echo "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

RESULTS="$WORK/results.txt"
: >"$RESULTS"
note() { echo "$*" | tee -a "$RESULTS"; }
field() { # field NAME LINE: the value of NAME=VALUE in LINE
  sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2" | head -n1
}

echo "== machine"
MODEL="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
CORES="$(nproc --all)"
KERNEL="$(uname -r)"
RUSTC="$(rustc --version)"
WRK_VERSION="$( (wrk -v 2>&1 || true) | head -n1 | awk '{print $1, $2}')"
MEMORY="$(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
note "cpu: $MODEL, $CORES cores; memory: $MEMORY; kernel: $KERNEL; $RUSTC; $WRK_VERSION"
note "server on core $SERVER_CORE, load generator on core $LOAD_CORE; $CONNECTIONS connections, ${DURATION}s per run after ${WARMUP}s warm-up; up to $SAMPLE key/token pairs"

echo "== building release binaries"
cargo build --release -q -p assetpool-server --bin assetpool
cargo build --release -q -p assetpool-bench
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

# cpu_ticks PID: user + system clock ticks of PID so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_HZ="$(getconf CLK_TCK)"

# wait_for_line FILE TEXT PID: waits (up to 60 s) until FILE holds TEXT.
wait_for_line() {
  local tries=0
  until grep -q "$2" "$1" 2>/dev/null; do
    if ! kill -0 "$3" 2>/dev/null; then
      echo "the process exited early:" >&2; cat "$1" >&2; exit 1
    fi
    tries=$((tries + 1))
    if [ "$tries" -gt 6000 ]; then echo "timed out waiting for '$2' in $1" >&2; exit 1; fi
    sleep 0.01
  done
}

# load NAME PORT PAIRS PID: warm-up then measured wrk run; prints the RESULT line
# with the server's CPU time per request appended. wrk runs on LOAD_CPUS
# (default: the load core) with WRK_THREADS threads (default 1).
load() {
  local name="$1" port="$2" pairs="$3" pid="$4" line before after
  local cpus="${LOAD_CPUS:-$LOAD_CORE}" threads="${WRK_THREADS:-1}"
  PAIRS="$pairs" taskset -c "$cpus" wrk -t"$threads" -c"$CONNECTIONS" -d"${WARMUP}s" \
    -s "$ROOT/bench/resource.lua" "http://127.0.0.1:$port/v1/resource" >/dev/null
  before="$(cpu_ticks "$pid")"
  line="$(PAIRS="$pairs" taskset -c "$cpus" wrk -t"$threads" -c"$CONNECTIONS" -d"${DURATION}s" \
    --timeout 5s -s "$ROOT/bench/resource.lua" "http://127.0.0.1:$port/v1/resource" |
    grep '^RESULT')"
  after="$(cpu_ticks "$pid")"
  local requests
  requests="$(field requests "$line")"
  local cpu_us
  cpu_us="$(awk -v t=$((after - before)) -v hz="$TICK_HZ" -v n="$requests" \
    'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "nan" }')"
  echo "$line cpu_us_per_request=$cpu_us" | sed "s/^RESULT/RESULT $name/"
}

echo "== HTTP ceiling (bench-ceiling)"
taskset -c "$SERVER_CORE" "$BIN/bench-ceiling" "127.0.0.1:$CEILING_PORT" 2>"$WORK/ceiling.log" &
CEILING_PID=$!
PIDS+=("$CEILING_PID")
wait_for_line "$WORK/ceiling.log" "listening on" "$CEILING_PID"
# The ceiling does not read the pairs, but the requests carry the same headers.
FIRST_N="${SIZES%% *}"
CEILING_PAIRS="$WORK/ceiling-pairs.txt"

declare -A CEILING_LINES PAIRS_USED RPS P50 P99 P999 CPU STARTUP RSS READS SEED NON2XX USAGE_LINES LIMITS_LINES FLOOR_LINES
for N in $SIZES; do
  echo "== N = $N: seeding"
  DB="$WORK/bench-$N.db"
  OUT="$WORK/seed-$N"
  SEED_LINE="$("$BIN/bench-seed" --database "sqlite://$DB" --count "$N" --sample "$SAMPLE" \
    --out "$OUT" --issuer "$ISSUER" | grep '^seeded')"
  note "N=$N $SEED_LINE"
  SEED[$N]="$(field total_s "$SEED_LINE")"
  PAIRS_USED[$N]="$(field pairs "$SEED_LINE")"

  if [ "$N" = "$FIRST_N" ]; then
    cp "$OUT/pairs.txt" "$CEILING_PAIRS"
  fi

  # start_server LOG [serve options...]: starts the server on the database, waits until it listens.
  start_server() {
    local log="$1"
    shift
    taskset -c "$SERVER_CORE" "$BIN/assetpool" serve --database "sqlite://$DB" \
      --listen "127.0.0.1:$SERVER_PORT" --environment production --issuer "$ISSUER" "$@" \
      >"$log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_for_line "$log" "listening on" "$SERVER_PID"
  }
  stop_server() {
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  }

  if [ "$N" = "$FIRST_N" ] && [ "$USAGE_ROUNDS" -gt 0 ]; then
    echo "== N = $N: usage tracking off vs on ($USAGE_ROUNDS rounds)"
    for ROUND in $(seq 1 "$USAGE_ROUNDS"); do
      for MODE in false true; do
        start_server "$WORK/usage-$MODE-$ROUND.log" --usage-tracking "$MODE"
        LINE="$(load "usage-tracking-$MODE" "$SERVER_PORT" "$OUT/pairs.txt" "$SERVER_PID")"
        note "$LINE"
        USAGE_LINES[$MODE]="${USAGE_LINES[$MODE]:-} $(field rps "$LINE"):$(field cpu_us_per_request "$LINE")"
        stop_server
      done
    done
  fi

  # Every key rate-limited (10^6/s, never reached: every request runs the
  # limit check and passes), decided by the server alone, then by Redis
  # (`--limits-store`, a redis-server of its own on the load core).
  if [ "$N" = "$FIRST_N" ] && [ "$LIMITS_ROUNDS" -gt 0 ]; then
    if command -v redis-server >/dev/null 2>&1; then
      echo "== N = $N: rate-limited keys, per server vs Redis ($LIMITS_ROUNDS rounds)"
      UNLIMITED_DB="$DB"
      DB="$WORK/limited-$N.db"
      # A copy through SQLite's backup API: the write-ahead log of the
      # servers just stopped is part of the database.
      python3 - "$UNLIMITED_DB" "$DB" <<'PYTHON'
import sqlite3, sys
source = sqlite3.connect(sys.argv[1])
database = sqlite3.connect(sys.argv[2])
source.backup(database)
source.close()
database.execute(
    "UPDATE api_keys SET rate_requests = 1000000, rate_unit_seconds = 1, rate_burst = 1000000"
)
database.commit()
PYTHON
      taskset -c "$LOAD_CORE" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
        --appendonly no >"$WORK/redis.log" 2>&1 &
      REDIS_PID=$!
      PIDS+=("$REDIS_PID")
      wait_for_line "$WORK/redis.log" "Ready to accept connections" "$REDIS_PID"
      for ROUND in $(seq 1 "$LIMITS_ROUNDS"); do
        for MODE in local redis; do
          if [ "$MODE" = redis ]; then
            start_server "$WORK/limits-$MODE-$ROUND.log" --limits-store "redis://127.0.0.1:$REDIS_PORT"
          else
            start_server "$WORK/limits-$MODE-$ROUND.log"
          fi
          REDIS_BEFORE="$(cpu_ticks "$REDIS_PID")"
          LINE="$(load "limited-$MODE" "$SERVER_PORT" "$OUT/pairs.txt" "$SERVER_PID")"
          REDIS_AFTER="$(cpu_ticks "$REDIS_PID")"
          REDIS_US="$(awk -v t=$((REDIS_AFTER - REDIS_BEFORE)) -v hz="$TICK_HZ" -v n="$(field requests "$LINE")" \
            'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "nan" }')"
          FALLBACKS="$(curl -fsS "http://127.0.0.1:$SERVER_PORT/metrics" |
            awk '/^assetpool_limits_store_fallbacks_total/ {print $2}')"
          note "$LINE redis_cpu_us_per_request=$REDIS_US fallbacks=${FALLBACKS:-none}"
          LIMITS_LINES[$MODE]="${LIMITS_LINES[$MODE]:-} $(field rps "$LINE"):$(field cpu_us_per_request "$LINE"):$REDIS_US:$(field p99_us "$LINE")"
          stop_server
        done
      done
      kill "$REDIS_PID"
      wait "$REDIS_PID" 2>/dev/null || true
      rm -f "$DB" "$DB-wal" "$DB-shm"
      DB="$UNLIMITED_DB"
    else
      note "rate-limited keys: skipped (redis-server is not installed)"
      LIMITS_ROUNDS=0
    fi
  fi

  # The ceiling, the verify floor (bench-verify-floor: the check, its usage
  # counting and the answer, on the same database and pairs) and the server,
  # one after the other; odd rounds in that order, even rounds the other way
  # round, so that a drift of the host weighs on all three alike. The floor's
  # and the server's caches are filled first, as before the main run.
  # measure_floor WHICH: one measurement of the round, appended to FLOOR_LINES.
  measure_floor() {
    local which="$1" line
    case "$which" in
      ceiling)
        line="$(load "floor-round-ceiling" "$CEILING_PORT" "$CEILING_PAIRS" "$CEILING_PID")"
        ;;
      floor)
        taskset -c "$SERVER_CORE" "$BIN/bench-verify-floor" --database "sqlite://$DB" \
          --issuer "$ISSUER" --listen "127.0.0.1:$FLOOR_PORT" >"$WORK/floor-$ROUND.log" 2>&1 &
        FLOOR_PID=$!
        PIDS+=("$FLOOR_PID")
        wait_for_line "$WORK/floor-$ROUND.log" "listening on" "$FLOOR_PID"
        PAIRS="$OUT/pairs.txt" taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d"${FILL}s" \
          -s "$ROOT/bench/resource.lua" "http://127.0.0.1:$FLOOR_PORT/v1/resource" >/dev/null
        line="$(load "floor-round-verify-floor" "$FLOOR_PORT" "$OUT/pairs.txt" "$FLOOR_PID")"
        kill "$FLOOR_PID"
        wait "$FLOOR_PID" 2>/dev/null || true
        ;;
      server)
        start_server "$WORK/floor-server-$ROUND.log"
        PAIRS="$OUT/pairs.txt" taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d"${FILL}s" \
          -s "$ROOT/bench/resource.lua" "http://127.0.0.1:$SERVER_PORT/v1/resource" >/dev/null
        line="$(load "floor-round-verify" "$SERVER_PORT" "$OUT/pairs.txt" "$SERVER_PID")"
        stop_server
        ;;
    esac
    note "$line"
    if [ "$(field non2xx "$line")" != 0 ]; then
      echo "the $which answered non-2xx during the floor rounds: its figures are not comparable" >&2
      exit 1
    fi
    FLOOR_LINES[$which]="${FLOOR_LINES[$which]:-} $(field rps "$line"):$(field cpu_us_per_request "$line"):$(field p99_us "$line")"
  }
  if [ "$N" = "$FIRST_N" ] && [ "$FLOOR_ROUNDS" -gt 0 ]; then
    echo "== N = $N: ceiling, verify floor, server ($FLOOR_ROUNDS rounds)"
    FILL="$(( (${PAIRS_USED[$N]} - 900) / 100 + 5 ))"
    if [ "$FILL" -lt "$WARMUP" ]; then FILL="$WARMUP"; fi
    for ROUND in $(seq 1 "$FLOOR_ROUNDS"); do
      if [ $((ROUND % 2)) = 1 ]; then ORDER="ceiling floor server"; else ORDER="server floor ceiling"; fi
      for WHICH in $ORDER; do
        measure_floor "$WHICH"
      done
    done
  fi

  echo "== N = $N: ceiling, then the server"
  CEILING_LINES[$N]="$(load "ceiling-N$N" "$CEILING_PORT" "$CEILING_PAIRS" "$CEILING_PID")"
  note "${CEILING_LINES[$N]}"
  LOG="$WORK/server-$N.log"
  STARTED_NS="$(date +%s%N)"
  start_server "$LOG"
  LISTENING_NS="$(date +%s%N)"
  until curl -fsS "http://127.0.0.1:$SERVER_PORT/readyz" >/dev/null 2>&1; do sleep 0.01; done
  READY_NS="$(date +%s%N)"
  STARTUP[$N]="$(( (LISTENING_NS - STARTED_NS) / 1000000 ))"
  note "N=$N startup_ms=${STARTUP[$N]} (listening line), ready_ms=$(( (READY_NS - STARTED_NS) / 1000000 ))"

  reads() {
    curl -fsS "http://127.0.0.1:$SERVER_PORT/metrics" |
      awk '/^assetpool_verify_storage_reads_total/ {print $2}'
  }
  # A first pass over every pair fills the key and token caches. A key not in
  # memory is read within its client network's budget (100 reads a second
  # after a burst of 1,000), and every request of wrk comes from 127.0.0.1:
  # so the pass lasts until every key could be read (refused ones, 429, are
  # asked again in turn).
  FILL="$(( (${PAIRS_USED[$N]} - 900) / 100 + 5 ))"
  if [ "$FILL" -lt "$WARMUP" ]; then FILL="$WARMUP"; fi
  PAIRS="$OUT/pairs.txt" taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d"${FILL}s" \
    -s "$ROOT/bench/resource.lua" "http://127.0.0.1:$SERVER_PORT/v1/resource" >/dev/null
  READS_BEFORE="$(reads)"
  if [ "$PROFILE" = 1 ] && [ "$N" = "${SIZES##* }" ]; then
    perf record -g -o "$WORK/perf-$N.data" -p "$SERVER_PID" -- sleep "$((WARMUP + DURATION))" \
      >/dev/null 2>&1 &
    PERF_PID=$!
  fi
  LINE="$(load "verify-N$N" "$SERVER_PORT" "$OUT/pairs.txt" "$SERVER_PID")"
  READS_AFTER="$(reads)"
  if [ "$PROFILE" = 1 ] && [ "$N" = "${SIZES##* }" ]; then
    wait "$PERF_PID" || true
    perf report -i "$WORK/perf-$N.data" --no-children --sort symbol --stdio -g none \
      2>/dev/null | grep -v '^#' | grep '%' | head -n 40 >"$WORK/profile-$N.txt" || true
    echo "profile of the server, N = $N (perf, top symbols by self time):" >>"$RESULTS"
    head -n 25 "$WORK/profile-$N.txt" | sed 's/[[:space:]]*$//' >>"$RESULTS"
  fi
  note "$LINE"
  RPS[$N]="$(field rps "$LINE")"
  P50[$N]="$(field p50_us "$LINE")"
  P99[$N]="$(field p99_us "$LINE")"
  P999[$N]="$(field p999_us "$LINE")"
  CPU[$N]="$(field cpu_us_per_request "$LINE")"
  NON2XX[$N]="$(field non2xx "$LINE")"
  READS[$N]="$((READS_AFTER - READS_BEFORE))"
  RSS[$N]="$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER_PID/status")"
  note "N=$N verify_storage_reads_delta=${READS[$N]} peak_rss_mib=${RSS[$N]}"

  LAST_N="$N"
  if [ "$N" = "${SIZES##* }" ]; then
    echo "== Argon2id bound (one thread on core $SERVER_CORE, default parameters)"
    ARGON2_LINE="$(taskset -c "$SERVER_CORE" "$BIN/bench-load" argon2 --seconds 5 | grep '^RESULT')"
    note "$ARGON2_LINE"
    ARGON2_PER_CORE="$(field per_second "$ARGON2_LINE")"
    SERVER_CORES="$(taskset -c "$SERVER_CORE" nproc)"
    ARGON2_BOUND="$(awk -v r="$ARGON2_PER_CORE" -v c="$SERVER_CORES" 'BEGIN { printf "%.2f", r * c }')"
    echo "== logins (N = $N)"
    LOGIN_OK="$(taskset -c "$LOAD_CORE" "$BIN/bench-load" login --addr "127.0.0.1:$SERVER_PORT" \
      --file "$OUT/login.txt" --connections 4 --seconds "$LOGIN_SECONDS" | tee -a "$RESULTS")"
    LOGIN_OVER="$(taskset -c "$LOAD_CORE" "$BIN/bench-load" login --addr "127.0.0.1:$SERVER_PORT" \
      --file "$OUT/login.txt" --connections "$CONNECTIONS" --seconds "$LOGIN_SECONDS" \
      --pause-after-503-ms 100 |
      tee -a "$RESULTS")"
    echo "== revocation (N = $N)"
    REVOKE="$(taskset -c "$LOAD_CORE" "$BIN/bench-load" revoke --addr "127.0.0.1:$SERVER_PORT" \
      --file "$OUT/revoke.txt" --assetpool "$BIN/assetpool" --database "sqlite://$DB" |
      tee -a "$RESULTS")"
  fi
  stop_server
  if [ "$N" = "${SIZES##* }" ] && [ "$SCALE" = 1 ]; then
    echo "== N = $N: both cores (server and wrk -t2 share cores $SERVER_CORE,$LOAD_CORE)"
    kill "$CEILING_PID"
    wait "$CEILING_PID" 2>/dev/null || true
    taskset -c "$SERVER_CORE,$LOAD_CORE" "$BIN/bench-ceiling" "127.0.0.1:$CEILING_PORT" \
      2>"$WORK/ceiling-both.log" &
    CEILING_PID=$!
    PIDS+=("$CEILING_PID")
    wait_for_line "$WORK/ceiling-both.log" "listening on" "$CEILING_PID"
    SCALE_CEILING="$(LOAD_CPUS="$SERVER_CORE,$LOAD_CORE" WRK_THREADS=2 \
      load "ceiling-both-cores" "$CEILING_PORT" "$CEILING_PAIRS" "$CEILING_PID")"
    note "$SCALE_CEILING"
    SERVER_CORE_SAVED="$SERVER_CORE"
    SERVER_CORE="$SERVER_CORE,$LOAD_CORE"
    start_server "$WORK/server-both.log"
    SERVER_CORE="$SERVER_CORE_SAVED"
    # The fresh server's caches are filled as above.
    PAIRS="$OUT/pairs.txt" taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d"${FILL}s" \
      -s "$ROOT/bench/resource.lua" "http://127.0.0.1:$SERVER_PORT/v1/resource" >/dev/null
    SCALE_VERIFY="$(LOAD_CPUS="$SERVER_CORE,$LOAD_CORE" WRK_THREADS=2 \
      load "verify-both-cores-N$N" "$SERVER_PORT" "$OUT/pairs.txt" "$SERVER_PID")"
    note "$SCALE_VERIFY"
    stop_server
  fi
  rm -f "$DB" "$DB-wal" "$DB-shm"
done
kill "$CEILING_PID" 2>/dev/null || true

LOGIN_RPS="$(grep 'status=200' <<<"$LOGIN_OK" | sed -n 's/.*per_second=\([^ ]*\).*/\1/p')"
OVER_200="$(grep 'status=200' <<<"$LOGIN_OVER" | sed -n 's/.*per_second=\([^ ]*\).*/\1/p')"
OVER_503="$(grep 'status=503' <<<"$LOGIN_OVER" || true)"
REVOKE_CMD="$(grep 'from_command' <<<"$REVOKE")"
REVOKE_COMMIT="$(grep 'from_commit' <<<"$REVOKE")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
# mean_of "a:b:... a:b:..." FIELD (1, 2, ...): the mean of one field.
mean_of() { tr ' ' '\n' <<<"$1" | awk -F: -v f="$2" 'NF { s += $f; n++ } END { if (n) printf "%.2f", s / n; else print "n/a" }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }

TABLE="$WORK/table.md"
{
  echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' + uncommitted changes')."
  echo
  echo "- machine: $MODEL, $CORES cores, $MEMORY; kernel $KERNEL; $RUSTC; $WRK_VERSION"
  echo "- server on core $SERVER_CORE, load on core $LOAD_CORE (\`taskset\`); \`wrk -t1 -c$CONNECTIONS -d${DURATION}s\` after a ${WARMUP}s warm-up, over min($SAMPLE, N - 21) distinct key/token pairs, taken in turn; the ceiling is measured right before the server at each N"
  echo
  echo "| measurement | requests/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/request | non-2xx |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  row() { # row LABEL RESULT-LINE
    echo "| $1 | $(field rps "$2") | $(ms "$(field p50_us "$2")") | $(ms "$(field p99_us "$2")") | $(ms "$(field p999_us "$2")") | $(field cpu_us_per_request "$2") | $(field non2xx "$2") |"
  }
  for N in $SIZES; do
    row "ceiling (bare axum), before N = $N" "${CEILING_LINES[$N]}"
    echo "| verify, N = $N (${PAIRS_USED[$N]} pairs) | ${RPS[$N]} | $(ms "${P50[$N]}") | $(ms "${P99[$N]}") | $(ms "${P999[$N]}") | ${CPU[$N]} | ${NON2XX[$N]} |"
  done
  if [ -n "${SCALE_VERIFY:-}" ]; then
    row "ceiling, both cores (wrk -t2 on the same cores)" "$SCALE_CEILING"
    row "verify, N = $LAST_N, both cores (wrk -t2 on the same cores)" "$SCALE_VERIFY"
  fi
  echo
  echo "| N | seeding s | start-up ms | peak RSS MiB | verify storage reads during the run |"
  echo "|---:|---:|---:|---:|---:|"
  for N in $SIZES; do
    echo "| $N | ${SEED[$N]} | ${STARTUP[$N]} | ${RSS[$N]} | ${READS[$N]} |"
  done
  echo
  echo "| ratio | value | target |"
  echo "|---|---:|---|"
  for N in $SIZES; do
    echo "| verify / ceiling (measured just before), N = $N | $(ratio "${RPS[$N]}" "$(field rps "${CEILING_LINES[$N]}")") | ≥ 0.85 |"
  done
  echo "| verify N = $LAST_N / N = $FIRST_N | $(ratio "${RPS[$LAST_N]}" "${RPS[$FIRST_N]}") | ≥ 0.90 |"
  if [ -n "${SCALE_VERIFY:-}" ]; then
    echo "| both cores / one core, verify N = $LAST_N | $(ratio "$(field rps "$SCALE_VERIFY")" "${RPS[$LAST_N]}") | |"
    echo "| both cores / one core, ceiling | $(ratio "$(field rps "$SCALE_CEILING")" "$(field rps "${CEILING_LINES[$LAST_N]}")") | |"
    echo "| verify / ceiling, both cores | $(ratio "$(field rps "$SCALE_VERIFY")" "$(field rps "$SCALE_CEILING")") | |"
  fi
  if [ "$USAGE_ROUNDS" -gt 0 ]; then
    echo "| usage tracking on / off, requests/s, N = $FIRST_N ($(mean_of "${USAGE_LINES[true]}" 1) / $(mean_of "${USAGE_LINES[false]}" 1), mean of $USAGE_ROUNDS alternating rounds) | $(ratio "$(mean_of "${USAGE_LINES[true]}" 1)" "$(mean_of "${USAGE_LINES[false]}" 1)") | |"
    echo "| usage tracking on − off, server CPU µs/request ($(mean_of "${USAGE_LINES[true]}" 2) − $(mean_of "${USAGE_LINES[false]}" 2)) | $(awk -v a="$(mean_of "${USAGE_LINES[true]}" 2)" -v b="$(mean_of "${USAGE_LINES[false]}" 2)" 'BEGIN { printf "%.2f", a - b }') | |"
  fi
  if [ "$FLOOR_ROUNDS" -gt 0 ]; then
    FC_RPS="$(mean_of "${FLOOR_LINES[ceiling]}" 1)" FF_RPS="$(mean_of "${FLOOR_LINES[floor]}" 1)" FS_RPS="$(mean_of "${FLOOR_LINES[server]}" 1)"
    FC_CPU="$(mean_of "${FLOOR_LINES[ceiling]}" 2)" FF_CPU="$(mean_of "${FLOOR_LINES[floor]}" 2)" FS_CPU="$(mean_of "${FLOOR_LINES[server]}" 2)"
    FLOOR_OF="mean of $FLOOR_ROUNDS rounds of ceiling, floor and server one after the other, the order reversed in even rounds, N = $FIRST_N"
    echo "| verify floor (check, usage counting and answer, no layers) / ceiling, requests/s ($FF_RPS / $FC_RPS, $FLOOR_OF) | $(ratio "$FF_RPS" "$FC_RPS") | |"
    echo "| verify / verify floor, requests/s ($FS_RPS / $FF_RPS) | $(ratio "$FS_RPS" "$FF_RPS") | |"
    echo "| verify / ceiling, requests/s, same rounds ($FS_RPS / $FC_RPS) | $(ratio "$FS_RPS" "$FC_RPS") | ≥ 0.85 |"
    echo "| server CPU µs/request: ceiling $FC_CPU, floor $FF_CPU (check +$(awk -v a="$FF_CPU" -v b="$FC_CPU" 'BEGIN { printf "%.2f", a - b }')), verify $FS_CPU (layers +$(awk -v a="$FS_CPU" -v b="$FF_CPU" 'BEGIN { printf "%.2f", a - b }')) | | |"
    echo "| p99 ms (means): ceiling $(ms "$(mean_of "${FLOOR_LINES[ceiling]}" 3)"), floor $(ms "$(mean_of "${FLOOR_LINES[floor]}" 3)"), verify $(ms "$(mean_of "${FLOOR_LINES[server]}" 3)") | | < 2 ms |"
  fi
  if [ "$LIMITS_ROUNDS" -gt 0 ]; then
    echo "| rate-limited keys, Redis / per server, requests/s, N = $FIRST_N ($(mean_of "${LIMITS_LINES[redis]}" 1) / $(mean_of "${LIMITS_LINES[local]}" 1), mean of $LIMITS_ROUNDS alternating rounds) | $(ratio "$(mean_of "${LIMITS_LINES[redis]}" 1)" "$(mean_of "${LIMITS_LINES[local]}" 1)") | |"
    echo "| rate-limited keys, Redis − per server, server CPU µs/request ($(mean_of "${LIMITS_LINES[redis]}" 2) − $(mean_of "${LIMITS_LINES[local]}" 2)); Redis's own CPU µs/request $(mean_of "${LIMITS_LINES[redis]}" 3) | $(awk -v a="$(mean_of "${LIMITS_LINES[redis]}" 2)" -v b="$(mean_of "${LIMITS_LINES[local]}" 2)" 'BEGIN { printf "%.2f", a - b }') | |"
  fi
  echo "| logins/s ($LOGIN_RPS, 4 connections) / Argon2 bound ($ARGON2_PER_CORE/s per core × $SERVER_CORES) | $(ratio "$LOGIN_RPS" "$ARGON2_BOUND") | ≥ 0.9 |"
  echo "| logins/s under overload ($OVER_200, $CONNECTIONS connections, 100 ms pause after a 503) / Argon2 bound | $(ratio "$OVER_200" "$ARGON2_BOUND") | |"
  echo
  echo "- 503 \`overloaded\` at $CONNECTIONS login connections: \`$(sed 's/^RESULT login //' <<<"${OVER_503:-none}")\` (target: p99 < 100 ms)"
  echo "- revocation, \`assetpool keys revoke\` started → first 401 \`api_key_revoked\`: \`$(sed 's/^RESULT revoke //' <<<"$REVOKE_CMD")\`"
  echo "- revocation, command finished (committed) → first 401: \`$(sed 's/^RESULT revoke //' <<<"$REVOKE_COMMIT")\` (target: < 1 s)"
  echo
  echo "Raw lines:"
  echo
  echo '```'
  cat "$RESULTS"
  echo '```'
} >"$TABLE"

echo
cat "$TABLE"

if [ "$WRITE_MD" = 1 ]; then
  MD="$ROOT/BENCHMARKS.md"
  START='<!-- generated:start (bench/run.sh replaces this section) -->'
  END='<!-- generated:end -->'
  if [ ! -f "$MD" ] || ! grep -qF "$START" "$MD"; then
    printf '\n## Latest run\n\n%s\n%s\n' "$START" "$END" >>"$MD"
  fi
  awk -v start="$START" -v end="$END" -v table="$TABLE" '
    $0 == start { print; while ((getline line < table) > 0) print line; skipping = 1; next }
    $0 == end { skipping = 0 }
    !skipping { print }
  ' "$MD" >"$MD.tmp" && mv "$MD.tmp" "$MD"
  echo "written to BENCHMARKS.md"
fi
