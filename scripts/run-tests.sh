#!/usr/bin/env bash
# Runs the whole suite on SQLite, and under CI=true on PostgreSQL as well.
#
# The two runs are independent (each test has its own SQLite file; the PostgreSQL run has
# its own database; NATS streams, SMTP servers and HTTP servers take names and ports unique
# to the test), so with both they run side by side, one per core: the PostgreSQL run's
# output goes to var/test-postgres.log and is printed when it ends. Both must pass.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PG_URL="${LOYALIST_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/loyalist_test}"

bash scripts/ensure-nats.sh  # the event stream's export tests talk to a real JetStream

both=""
if [[ "${CI:-}" == "true" || "${LOYALIST_TEST_POSTGRES:-}" == "1" ]]; then
  both=1
fi

pg_pid=""
if [[ -n "$both" ]]; then
  bash scripts/ensure-postgres.sh "$PG_URL"
  mkdir -p var
  echo "== suite on PostgreSQL (in the background: var/test-postgres.log) =="
  LOYALIST_TEST_DATABASE=postgres LOYALIST_TEST_PG_URL="$PG_URL" \
    $PY -m pytest -q -p no:cacheprovider -m "not sqlite_only" tests/integration tests/e2e "$@" \
    >var/test-postgres.log 2>&1 &
  pg_pid=$!
fi

echo "== suite on SQLite =="
sqlite_rc=0
LOYALIST_TEST_DATABASE=sqlite $PY -m pytest -q -p no:cacheprovider "$@" || sqlite_rc=$?

pg_rc=0
if [[ -n "$pg_pid" ]]; then
  wait "$pg_pid" || pg_rc=$?
  echo "== suite on PostgreSQL =="
  cat var/test-postgres.log
fi
echo "SQLite run: exit $sqlite_rc${pg_pid:+; PostgreSQL run: exit $pg_rc}"
[[ $sqlite_rc -eq 0 && $pg_rc -eq 0 ]]
