"""bench_earn.postgres_cpu_seconds counts the CPU of the bench database's backends only
(issue 11): summing every postgres process of the machine counted other databases' work
and went negative when one of their backends ended during a run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import bench_earn


def test_a_difference_counts_the_backends_of_the_later_reading() -> None:
    earlier = bench_earn.PgCpu({1: 2.0, 3: 9.0})
    later = bench_earn.PgCpu({1: 5.0, 2: 3.0})
    # 1: 3 s in between; 2 connected in between: from its start; 3 left: not counted
    assert later - earlier == pytest.approx(6.0)
    assert later - later == 0


def test_the_backends_are_those_of_one_database(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def psql(sql: str, db: str = "postgres") -> str:
        asked.append(sql)
        return "11\n12\n"

    monkeypatch.setattr(bench_earn, "psql", psql)
    assert bench_earn.backend_pids("flame's_bench") == [11, 12]
    assert "datname = 'flame''s_bench'" in asked[0]
    assert "backend_type = 'client backend'" in asked[0]


def test_only_those_backends_cpu_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = max(psutil.pids()) + 100_000  # a backend that ended before it was read
    monkeypatch.setattr(bench_earn, "psql", lambda sql, db="postgres": f"{os.getpid()} {gone}")
    reading = bench_earn.postgres_cpu_seconds("any_db")
    assert list(reading.by_pid) == [os.getpid()]
    t = psutil.Process().cpu_times()
    assert 0 < reading.by_pid[os.getpid()] <= t.user + t.system
