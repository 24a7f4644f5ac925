#!/usr/bin/env bash
# bench/console_pages.sh [BINARY]: how fast the console's applications pages,
# owner view and overview answer on PostgreSQL with a million keys. Not run
# by CI (seeding takes minutes); BENCHMARKS.md has its latest figures.
#
# Creates the database $DB (default console_bench, dropped first) on the
# PostgreSQL server of $PG (default postgres://postgres@127.0.0.1:5432),
# migrates it with BINARY (default: the release build), seeds it in SQL
# (generate_series): $KEYS keys (default 1,000,000) in 10,000 applications,
# an owner's application holding 1,000 of them (20 with an owner webhook,
# 500 deliveries each), 100,000 alerts, 100,000 other deliveries, and the
# usage of $ACTIVE keys (default 1,000) for every hour of the last day and
# every minute of the last hour. Then starts the server, signs in as an
# admin and as the owner (curl, cookie jar) and times each page $ROUNDS
# times (curl's time_total) after one warm-up, printing median, 95th
# percentile and maximum in milliseconds. KEEP=1 keeps the database.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${CARGO_TARGET_DIR:-target}/release/assetpool}"
if [ ! -x "$bin" ]; then
  echo "error: no assetpool binary at $bin (cargo build --release -p assetpool-server)" >&2
  exit 1
fi
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
DB="${DB:-console_bench}"
KEYS="${KEYS:-1000000}"
ACTIVE="${ACTIVE:-1000}"
ROUNDS="${ROUNDS:-20}"
url="$PG/$DB"
password="console bench password 1234"
work="$(mktemp -d /tmp/assetpool-console-bench.XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  if [ "${KEEP:-0}" != 1 ]; then
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null
psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
ap() { "$bin" --database "$url" "$@"; }
ap migrate >/dev/null
echo "$password" | ap users create --email admin@bench.example.com --password-stdin --admin >/dev/null
echo "$password" | ap users create --email owner@bench.example.com --password-stdin >/dev/null
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
owner_app="$(ap keys create --name owner-key --env prod --json | field application)"
ap applications add-member "$owner_app" owner@bench.example.com --role owner >/dev/null

echo "seeding $KEYS keys, usage of $ACTIVE keys, alerts and deliveries..."
started=$SECONDS
now=$(($(date +%s) * 1000))
psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null <<SQL
INSERT INTO applications (id, name, created_at)
  SELECT 'app_bench' || lpad(g::text, 6, '0'), 'bench application ' || g, $now - 86400000
  FROM generate_series(1, 10000) g;
-- Keys 1..1000 belong to the owner's application, the rest to the others.
INSERT INTO api_keys (id, application_id, name, environment, key_hash, prefix, created_at)
  SELECT 'key_bench' || lpad(g::text, 7, '0'),
         CASE WHEN g <= 1000 THEN '$owner_app' ELSE 'app_bench' || lpad((g % 10000 + 1)::text, 6, '0') END,
         'bench key ' || g, 'production', sha256(('bench' || g)::bytea),
         'apk_prod_' || substr(md5(g::text), 1, 6), $now - ($KEYS - g) * 60
  FROM generate_series(1, $KEYS) g;
INSERT INTO api_key_webhooks (api_key_id, url, sealed_secret, updated_at)
  SELECT 'key_bench' || lpad(g::text, 7, '0'), 'https://hooks.example.com/bench/' || g, 'plain:c2VjcmV0', $now
  FROM generate_series(1, 20) g;
INSERT INTO alerts (id, rule, subject, api_key_id, evidence, first_seen, last_seen, occurrences, acked_at, acked_by)
  SELECT 'alr_bench' || g, 'revoked_key_used', 'key:key_bench' || lpad(((g * 7919) % $KEYS + 1)::text, 7, '0'),
         'key_bench' || lpad(((g * 7919) % $KEYS + 1)::text, 7, '0'), '{}',
         $now - (100000 - g) * 1000, $now - (100000 - g) * 1000, 1,
         CASE WHEN g % 10 = 0 THEN NULL ELSE $now END, CASE WHEN g % 10 = 0 THEN NULL ELSE 'cli:bench' END
  FROM generate_series(1, 100000) g;
INSERT INTO webhook_deliveries (id, alert_id, url, secret_ref, payload, attempts, created_at, next_attempt_at, delivered_at, last_error)
  SELECT 'dlv_bench' || g, 'alr_bench' || (g % 100000 + 1), 'https://hooks.example.com/bench',
         CASE WHEN g <= 10000 THEN 'key:key_bench' || lpad((g % 20 + 1)::text, 7, '0')
              ELSE 'key:key_bench' || lpad((g % $KEYS + 1)::text, 7, '0') END,
         '{}', 1 + g % 3, $now - (110000 - g) * 1000, $now - (110000 - g) * 1000,
         CASE WHEN g % 4 = 0 THEN NULL ELSE $now - (110000 - g) * 1000 + 500 END,
         CASE WHEN g % 4 = 0 THEN 'HTTP 503' ELSE NULL END
  FROM generate_series(1, 110000) g;
-- Usage of the active keys: every hour of the last day, every minute of the last hour.
INSERT INTO api_key_usage (api_key_id, resolution, bucket_start, outcome, count)
  SELECT 'key_bench' || lpad((k * ($KEYS / $ACTIVE))::text, 7, '0'), 'hour',
         ($now / 3600000 - h) * 3600000, o, 1 + (k + h) % 50
  FROM generate_series(1, $ACTIVE) k, generate_series(0, 24) h,
       unnest(ARRAY['2xx', '4xx:invalid_token', '5xx']) o;
INSERT INTO api_key_usage (api_key_id, resolution, bucket_start, outcome, count)
  SELECT 'key_bench' || lpad((k * ($KEYS / $ACTIVE))::text, 7, '0'), 'minute',
         ($now / 60000 - m) * 60000, o, 1 + (k + m) % 5
  FROM generate_series(1, $ACTIVE) k, generate_series(0, 60) m,
       unnest(ARRAY['2xx', '4xx:invalid_token']) o;
-- The sums every usage flush keeps beside the buckets.
INSERT INTO api_key_usage_totals (resolution, bucket_start, outcome, count)
  SELECT resolution, bucket_start, outcome, SUM(count) FROM api_key_usage
  GROUP BY resolution, bucket_start, outcome;
ANALYZE;
SQL
echo "seeded in $((SECONDS - started)) s"

"$bin" --database "$url" serve --listen 127.0.0.1:0 --environment production >"$work/serve.log" 2>&1 &
server_pid=$!
base=""
for _ in $(seq 1 100); do
  base="$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/serve.log" | head -n 1)"
  [ -n "$base" ] && break
  sleep 0.1
done
if [ -z "$base" ]; then
  cat "$work/serve.log" >&2
  echo "error: the server did not start" >&2
  exit 1
fi

# sign_in EMAIL JAR: a console session in the cookie jar JAR.
sign_in() {
  local page token
  page="$(curl -s -c "$2" "$base/console/sign-in")"
  token="$(printf '%s' "$page" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -n 1)"
  curl -s -o /dev/null -b "$2" -c "$2" --data-urlencode "csrf_token=$token" \
    --data-urlencode "username=$1" --data-urlencode "password=$password" "$base/console/sign-in"
}

# time_page LABEL JAR PATH: ROUNDS timed GETs after one warm-up.
time_page() {
  local status
  status="$(curl -s -o /dev/null -w '%{http_code}' -b "$2" "$base$3")"
  if [ "$status" != 200 ]; then
    echo "error: $3 answered $status" >&2
    exit 1
  fi
  for _ in $(seq 1 "$ROUNDS"); do
    curl -s -o /dev/null -w '%{time_total}\n' -b "$2" "$base$3"
  done | sort -n | awk -v label="$1" -v path="$3" '
    { t[NR] = $1 * 1000 }
    END {
      p95 = int(NR * 0.95 + 0.5); if (p95 < 1) p95 = 1
      printf "%-28s %-48s median %6.1f ms  p95 %6.1f ms  max %6.1f ms\n",
        label, path, t[int((NR + 1) / 2)], t[p95], t[NR]
    }'
}

sign_in admin@bench.example.com "$work/admin.jar"
sign_in owner@bench.example.com "$work/owner.jar"
echo "$KEYS keys, $ACTIVE active, $ROUNDS rounds each:"
time_page "admin: overview" "$work/admin.jar" "/console/"
time_page "admin: applications" "$work/admin.jar" "/console/applications"
time_page "admin: owner's application" "$work/admin.jar" "/console/applications/$owner_app"
time_page "admin: other application" "$work/admin.jar" "/console/applications/app_bench000001"
time_page "owner: my applications" "$work/owner.jar" "/console/"
time_page "owner: application" "$work/owner.jar" "/console/applications/$owner_app"
time_page "admin: keys" "$work/admin.jar" "/console/keys"
time_page "admin: keys, production" "$work/admin.jar" "/console/keys?environment=production"
time_page "admin: keys, revoked" "$work/admin.jar" "/console/keys?status=revoked"
time_page "admin: keys of an application" "$work/admin.jar" "/console/keys?application=app_bench000001"
time_page "admin: keys, search by prefix" "$work/admin.jar" "/console/keys?q=apk_prod_ab"
time_page "admin: keys, search by name" "$work/admin.jar" "/console/keys?q=bench+key+99"
time_page "admin: keys, search by id" "$work/admin.jar" "/console/keys?q=key_bench0500000"
time_page "admin: a key" "$work/admin.jar" "/console/keys/key_bench0500000"
time_page "admin: alerts" "$work/admin.jar" "/console/alerts"
time_page "admin: audit log" "$work/admin.jar" "/console/audit"
time_page "admin: users" "$work/admin.jar" "/console/users"
time_page "admin: signing keys" "$work/admin.jar" "/console/signing-keys"
