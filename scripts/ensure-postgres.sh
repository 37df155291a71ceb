#!/usr/bin/env bash
# Makes sure the PostgreSQL server used by the suite is up and the test database exists.
# Fails (never skips) when it cannot be reached.
set -euo pipefail
url="${1:-postgresql+psycopg://postgres@127.0.0.1:5432/loyalist_test}"
db="${url##*/}"
up() { pg_isready -q -h 127.0.0.1 -p 5432; }
if ! up; then
  echo "PostgreSQL is down; starting it"
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do up && break; sleep 1; done
fi
up || { echo "PostgreSQL at 127.0.0.1:5432 cannot be reached" >&2; exit 1; }
if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -c "create database $db" >/dev/null
fi
echo "PostgreSQL ready: $db"
