#!/usr/bin/env bash
# Export and import at N keys (default a million): time and peak memory of
# `assetpool export` from SQLite, `import` into SQLite from a file (read in
# place) and into PostgreSQL from a pipe (copied to a temporary file first).
# Needs about 3 GB of free disk at a million keys.
#
# Usage: bench/transfer.sh RELEASE_DIR [N] [POSTGRES_ADMIN_URL]
# (RELEASE_DIR holds `assetpool` and `bench-seed`: target/release after
# `cargo build --release -p assetpool-server -p assetpool-bench`.)
set -euo pipefail
bin="$(realpath "$1")"
count="${2:-1000000}"
admin_url="${3:-postgres://postgres@127.0.0.1:5432/postgres}"
target_url="${admin_url%/*}/assetpool_transfer_bench"
work="$(mktemp -d)"
cleanup() {
  psql "$admin_url" -qAtc "DROP DATABASE IF EXISTS assetpool_transfer_bench" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
measure() { local label="$1"; shift; /usr/bin/time -f "$label: %e s, peak RSS %M KB" "$@"; }

"$bin/bench-seed" --database "sqlite://$work/source.db" --count "$count" --sample 10 \
  --out "$work/sample.json" --issuer http://127.0.0.1:1 | grep '^seeded'
measure "export (SQLite)" "$bin/assetpool" --database "sqlite://$work/source.db" export \
  > "$work/export.jsonl" 2> >(grep -v '^Left out' >&2)
echo "export: $(wc -l < "$work/export.jsonl") lines, $(du -h "$work/export.jsonl" | cut -f1)"
measure "import into SQLite, stdin a file" "$bin/assetpool" --database "sqlite://$work/target.db" \
  import < "$work/export.jsonl" 2> >(grep -v 'key-encryption key' >&2)
psql "$admin_url" -qAtc "DROP DATABASE IF EXISTS assetpool_transfer_bench" >/dev/null 2>&1
psql "$admin_url" -qAtc "CREATE DATABASE assetpool_transfer_bench"
cat "$work/export.jsonl" | measure "import into PostgreSQL, stdin a pipe" "$bin/assetpool" \
  --database "$target_url" import
