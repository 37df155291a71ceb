"""benchmarks/earn_pyfloor.py reads earn_floor.sql itself: its reading of the script (the
``\\set`` expressions, the ``:name`` variables, ``\\gset``) must be pgbench's (issue 11)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import earn_pyfloor  # noqa: E402


def test_the_floor_script_reads_as_pgbench_runs_it() -> None:
    steps = earn_pyfloor.parse((BENCH / "earn_floor.sql").read_text())
    sets = [s.name for s in steps if s.name]
    sql = [s.sql for s in steps if s.sql]
    assert sets == ["m", "s", "x", "gross", "pts"]
    assert sql[0] == "BEGIN" and sql[-2] == "COMMIT"
    assert [s.sql.split()[0] for s in steps if s.gset] == ["INSERT", "INSERT", "INSERT", "WITH"]
    assert len(sql) == 12
    # variables become psycopg placeholders; string literals are left alone
    entry = next(s for s in sql if s.startswith("INSERT INTO ledger_entry"))
    assert "'order:' || %(o)s || ':earn'" in entry
    assert "%(earn)s" not in entry
    assert sql[-1] == "UPDATE outbox_event SET position = id WHERE id IN (%(ev1)s, %(ev2)s)"


def test_set_expressions() -> None:
    rng = random.Random(3)
    env: dict[str, object] = {"members": 7, "gross": 3099}
    for _ in range(200):
        assert 1 <= earn_pyfloor.evaluate("random(1, :members)", env, rng) <= 7
    assert earn_pyfloor.evaluate(":gross / 100", env, rng) == 30
    assert earn_pyfloor.evaluate(":gross * 2", env, rng) == 6198
    assert earn_pyfloor.evaluate("12", env, rng) == 12
