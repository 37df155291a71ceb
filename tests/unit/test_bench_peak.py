"""The peak bench's own arithmetic (benchmarks/bench_peak.py): the terminals' retry policy and
the figures it reports (percentiles, requests in progress), which the docs quote."""

from __future__ import annotations

import importlib
import os
import random
import sys
from pathlib import Path
from types import ModuleType
from unittest import mock

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bp() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        with mock.patch.dict(os.environ):  # the bench sets BENCH_DB for itself
            return importlib.import_module("bench_peak")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_a_refused_terminal_waits_retry_after_doubled_up_to_the_cap_with_jitter(
    bp: ModuleType,
) -> None:
    policy = bp.Policy(backoff_cap_s=30.0)
    rng = random.Random(3)
    waits = {n: [policy.wait(1.0, n, rng) for _ in range(200)] for n in (1, 2, 3, 5, 6, 9)}
    for n, base in ((1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (9, 30.0)):
        assert min(waits[n]) >= base
        assert max(waits[n]) < 1.5 * base
        assert max(waits[n]) - min(waits[n]) > 0.3 * base  # jittered, not in lockstep


def test_a_terminal_never_retries_before_retry_after(bp: ModuleType) -> None:
    policy = bp.Policy(backoff_cap_s=30.0)
    rng = random.Random(4)
    assert min(policy.wait(60.0, 1, rng) for _ in range(50)) >= 60.0


def test_percentiles_are_nearest_rank(bp: ModuleType) -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert bp.pct(values, 50) == 50.0
    assert bp.pct(values, 99) == 99.0
    assert bp.pct(values, 100) == 100.0
    assert bp.pct([7.0], 99) == 7.0


def test_most_at_once_counts_overlapping_spans(bp: ModuleType) -> None:
    assert bp.most_at_once([(0.0, 2.0), (1.0, 3.0), (2.5, 4.0)]) == 2
    assert bp.most_at_once([(0.0, 5.0), (1.0, 4.0), (2.0, 3.0)]) == 3
    assert bp.most_at_once([(0.0, 1.0), (1.0, 2.0)]) == 1  # one ends as the next starts


def test_in_flight_is_the_mean_number_of_tries_at_the_server_per_bucket(bp: ModuleType) -> None:
    attempts = [(100.0, 110.0, 201), (105.0, 115.0, 503), (121.0, 122.0, 200)]
    assert bp.in_flight(attempts, 100.0, 10.0, 3) == [1.5, 0.5, 0.1]


def test_the_schedule_offers_0_7_r_then_2_r_at_the_peak(bp: ModuleType) -> None:
    offsets = bp.schedule(10.0, 10.0)
    total = 600.0
    base = sum(1 for t in offsets if t < 0.3 * total)
    peak = sum(1 for t in offsets if 0.4 * total <= t < 0.6 * total)
    assert base == pytest.approx(0.7 * 10 * 180, abs=2)
    assert peak == pytest.approx(2.0 * 10 * 120, abs=2)
    assert offsets == sorted(offsets)
    assert offsets[-1] < total


def test_every_customer_queues_at_one_till_in_schedule_order(bp: ModuleType) -> None:
    offsets = bp.schedule(10.0, 10.0)
    queues = bp.assign(offsets, 7, random.Random(5))
    assert len(queues) == 7
    assert sorted(t for q in queues for t in q) == offsets  # each exactly once
    assert all(q == sorted(q) for q in queues)  # a till serves its queue in arrival order
    sizes = [len(q) for q in queues]
    assert min(sizes) > 0.8 * len(offsets) / 7  # drawn at random, about even
    assert max(sizes) < 1.2 * len(offsets) / 7


class _NoTill:
    async def request(self, raw: bytes) -> object:
        raise AssertionError("a customer who walked away must not be sent")


def test_a_customer_still_queued_when_the_policy_gives_up_walks_away_unsent(
    bp: ModuleType,
) -> None:
    import asyncio
    import time
    from concurrent.futures import ThreadPoolExecutor

    traffic = bp.Traffic(1, "key", [1, 2], seed=3, policy=bp.Policy(keep_s=600.0))
    traffic.book.order_pool.append(42)
    traffic.rng = mock.Mock()
    traffic.rng.choices.return_value = ["return"]  # the next customer returns order 42
    traffic.rng.randrange.return_value = 0
    # in a thread of its own: an earlier test in the suite may leave this thread's loop running
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, traffic.send(time.monotonic() - 601.0, _NoTill())).result(30)
    [result] = traffic.results
    assert (result.op, result.status, result.tries, result.body) == ("return", 0, 0, b"walked away")
    assert traffic.book.order_pool == [42]  # the order stays returnable
    assert not bp.success(result)
