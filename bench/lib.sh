# Shared by bench/soak.sh and bench/sweep.sh (sourced): the check for
# PostgreSQL's initdb, and a work folder whose processes (listed in
# $WORK/pids) and PostgreSQL instance ($WORK/pgdata) are stopped on exit,
# and which is removed unless KEEP=1.

require_initdb() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    echo "error: PostgreSQL's initdb is missing (Debian: apt-get install postgresql)" >&2
    exit 1
  fi
}

cleanup_work() {
  # The Python drivers stop everything they started; this is the safety net for a hard stop.
  if [ -f "$WORK/pids" ]; then
    while read -r pid; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done <"$WORK/pids"
  fi
  if [ -f "$WORK/pgdata/postmaster.pid" ]; then
    pg_bin="$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n1)")"
    if [ "$(id -u)" = 0 ]; then
      runuser -u postgres -- "$pg_bin/pg_ctl" -D "$WORK/pgdata" -m immediate stop >/dev/null 2>&1 || true
    else
      "$pg_bin/pg_ctl" -D "$WORK/pgdata" -m immediate stop >/dev/null 2>&1 || true
    fi
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "work folder kept: $WORK" >&2; else rm -rf "$WORK"; fi
}

# make_work NAME: sets WORK to a fresh /tmp/assetpool-NAME.XXXXXX and installs the traps.
make_work() {
  WORK="$(mktemp -d "/tmp/assetpool-$1.XXXXXX")"
  trap cleanup_work EXIT
  trap 'exit 130' INT TERM
}
