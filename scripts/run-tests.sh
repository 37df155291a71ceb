#!/usr/bin/env bash
# Runs the whole suite on SQLite, and under CI=true on PostgreSQL as well.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PG_URL="${LOYALIST_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/loyalist_test}"

bash scripts/ensure-nats.sh  # the event stream's export tests talk to a real JetStream

echo "== suite on SQLite =="
LOYALIST_TEST_DATABASE=sqlite $PY -m pytest -q -p no:cacheprovider "$@"

if [[ "${CI:-}" == "true" || "${LOYALIST_TEST_POSTGRES:-}" == "1" ]]; then
  echo "== suite on PostgreSQL =="
  bash scripts/ensure-postgres.sh "$PG_URL"
  LOYALIST_TEST_DATABASE=postgres LOYALIST_TEST_PG_URL="$PG_URL" \
    $PY -m pytest -q -p no:cacheprovider -m "not sqlite_only" tests/integration tests/e2e "$@"
fi
