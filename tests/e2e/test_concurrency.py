"""Concurrency against a real server process on the current backend (SQLite or PostgreSQL).

Many HTTP clients (threads, one httpx client each) hit one member at once, every request
carries an Idempotency-Key and is retried with it (some after a client-side timeout while
the server is still working). We check what the database holds afterwards: no credit lost
or doubled, no balance ever negative, exactly the redemptions the balance allows, one
application per key, reward stock decremented atomically, and ``loyalist ledger verify``
clean. Any 5xx answer fails the test.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.server import Server, cli, prepare, running_server
from tests.support import order_payload

from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.models import (
    IdempotencyRecord,
    LedgerEntry,
    Order,
    Redemption,
    Reward,
)

pytestmark = pytest.mark.timeout(300)

REWARDS = [
    {"code": "ten", "name": "Ten points", "points": 10},
    {"code": "scarce", "name": "Only five", "points": 10, "stock": 5},
]


@dataclass
class Outcome:
    """Every answer one logical request got (retries share the key)."""

    key: str
    answers: list[tuple[int, Any]] = field(default_factory=list)
    timeouts: int = 0
    replayed: int = 0

    @property
    def final(self) -> tuple[int, Any]:
        return self.answers[-1]


class Clients:
    """A pool of HTTP clients, one per thread, all with the HQ key."""

    def __init__(self, server: Server, key: str) -> None:
        self.server = server
        self.headers = {"Authorization": f"Bearer {key}"}
        self.local = threading.local()
        self.all: list[httpx.Client] = []
        self.lock = threading.Lock()

    def client(self) -> httpx.Client:
        c: httpx.Client | None = getattr(self.local, "client", None)
        if c is None:
            c = httpx.Client(base_url=self.server.url, headers=self.headers, timeout=60)
            self.local.client = c
            with self.lock:
                self.all.append(c)
        return c

    def close(self) -> None:
        for c in self.all:
            c.close()

    def send(
        self, path: str, body: dict[str, Any], key: str, *, tries: int, timeout_first: bool
    ) -> Outcome:
        """POST ``tries`` times with one key; optionally the first try gives up early."""
        out = Outcome(key)
        for attempt in range(tries):
            timeout = 0.002 if (timeout_first and attempt == 0) else 60.0
            try:
                r = self.client().post(
                    path, json=body, headers={"Idempotency-Key": key}, timeout=timeout
                )
            except httpx.TimeoutException:
                out.timeouts += 1
                continue
            out.answers.append((r.status_code, r.json()))
            if r.headers.get("Idempotent-Replayed") == "true":
                out.replayed += 1
        assert out.answers, f"{key}: every try timed out"
        return out


def setup_member(c: httpx.Client, external_id: str, points: int) -> int:
    r = c.post("/v1/members", json={"external_id": external_id})
    assert r.status_code == 201, r.text
    mid = int(r.json()["id"])
    if points:
        r = c.post(f"/v1/members/{mid}/adjustments", json={"points": points, "reason": "setup"})
        assert r.status_code == 201, r.text
    return mid


def run_parallel(n_threads: int, tasks: list[Callable[[], Outcome]]) -> list[Outcome]:
    start = threading.Barrier(min(n_threads, len(tasks)))

    def go(task: Callable[[], Outcome], i: int) -> Outcome:
        if i < n_threads:
            start.wait(timeout=60)  # the first wave leaves together
        return task()

    with ThreadPoolExecutor(n_threads) as pool:
        futures = [pool.submit(go, t, i) for i, t in enumerate(tasks)]
        return [f.result() for f in futures]


def assert_consistent(outcomes: list[Outcome]) -> None:
    """No 5xx; every answer to one key is the same status and body."""
    for o in outcomes:
        for status, _body in o.answers:
            assert status < 500, f"{o.key}: {o.answers}"
        assert len({(s, repr(b)) for s, b in o.answers}) == 1, f"{o.key}: {o.answers}"


def recent(minutes: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


def available_history_never_negative(db: Database, member_id: int) -> None:
    with db.transaction() as s:
        deltas = s.scalars(
            select(LedgerEntry.delta_available)
            .where(LedgerEntry.member_id == member_id)
            .order_by(LedgerEntry.id)
        ).all()
    running = 0
    for d in deltas:
        running += d
        assert running >= 0, f"balance went negative: {list(deltas)}"


def assert_verify_clean(db_url: str) -> None:
    res = cli(db_url, "ledger", "verify")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ledger verified" in res.stdout


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Any:
    world = prepare(db_url, REWARDS)
    with running_server(db_url, tmp_path / "server.log") as server:
        clients = Clients(server, world.keys["hq"])
        try:
            yield server, clients
        finally:
            clients.close()
        assert server.errors_logged() == ""


def test_mixed_earn_and_redeem_on_one_member(live: Any, db_url: str) -> None:
    """16 clients on one member: 24 orders (pending points) and 30 ten-point redemptions
    against 100 available points, each retried once or twice with its key."""
    _server, clients = live
    mid = setup_member(clients.client(), "mixed", 100)
    rng = random.Random(7)
    tasks: list[Callable[[], Outcome]] = []
    for i in range(24):
        body = order_payload(f"mix-{i}", mid, paid=(i + 1) * 100, occurred_at=recent(30))
        tasks.append(
            lambda body=body, i=i: clients.send(
                "/v1/orders", body, f"order-{i}", tries=1 + i % 2 + 1, timeout_first=i % 5 == 0
            )
        )
    for i in range(30):
        body = {"member_id": mid, "reward": "ten"}
        tasks.append(
            lambda body=body, i=i: clients.send(
                "/v1/redemptions",
                body,
                f"redeem-{i}",
                tries=1 + i % 2 + 1,
                timeout_first=i % 7 == 0,
            )
        )
    rng.shuffle(tasks)
    outcomes = run_parallel(16, tasks)
    assert_consistent(outcomes)

    by_key = {o.key: o for o in outcomes}
    orders = [by_key[f"order-{i}"] for i in range(24)]
    assert [o.final[0] for o in orders] == [201] * 24
    redeems = [by_key[f"redeem-{i}"] for i in range(30)]
    finals = Counter(o.final[0] for o in redeems)
    assert finals == {201: 10, 409: 20}
    assert {o.final[1]["code"] for o in redeems if o.final[0] == 409} == {"insufficient_points"}
    # Once a key has succeeded, every later try replays the stored answer (a try that
    # follows a client-side timeout may itself be the replay, or the one that did the work).
    for o in orders + redeems:
        if o.final[0] == 201:
            if o.timeouts:
                assert len(o.answers) - 1 <= o.replayed <= len(o.answers)
            else:
                assert o.replayed == len(o.answers) - 1

    db = Database(db_url)
    try:
        with db.transaction() as s:
            acct = ledger.get_account(s, mid)
            assert acct is not None
            expected_pending = sum(range(1, 25))  # ¥(i+1) earns i+1 points, pending 7 days
            assert (acct.available, acct.pending, acct.debt) == (0, expected_pending, 0)
            assert acct.lifetime_earned == expected_pending
            assert s.scalar(select(func.count()).select_from(Order)) == 24
            earns = s.execute(
                select(LedgerEntry.source_id, func.count())
                .where(LedgerEntry.kind == "earn")
                .group_by(LedgerEntry.source_id)
            ).all()
            assert len(earns) == 24 and all(c == 1 for _sid, c in earns)
            ok_ids = sorted(o.final[1]["id"] for o in redeems if o.final[0] == 201)
            rows = s.scalars(select(Redemption.id).where(Redemption.member_id == mid)).all()
            assert sorted(rows) == ok_ids
            keys = s.scalar(select(func.count()).select_from(IdempotencyRecord))
            # One record per key that succeeded; the setup sent no key.
            assert keys == 24 + 10
        available_history_never_negative(db, mid)
    finally:
        db.dispose()
    assert_verify_clean(db_url)


def test_fifty_parallel_redemptions_on_a_hundred_points(live: Any, db_url: str) -> None:
    _server, clients = live
    mid = setup_member(clients.client(), "fifty", 100)
    body = {"member_id": mid, "reward": "ten"}
    tasks: list[Callable[[], Outcome]] = [
        lambda i=i: clients.send("/v1/redemptions", body, f"r-{i}", tries=2, timeout_first=False)
        for i in range(50)
    ]
    outcomes = run_parallel(50, tasks)
    assert_consistent(outcomes)
    assert Counter(o.final[0] for o in outcomes) == {201: 10, 409: 40}
    db = Database(db_url)
    try:
        with db.transaction() as s:
            acct = ledger.get_account(s, mid)
            assert acct is not None
            assert (acct.available, acct.pending, acct.debt) == (0, 0, 0)
            n = s.scalar(select(func.count()).select_from(Redemption))
            assert n == 10
        available_history_never_negative(db, mid)
    finally:
        db.dispose()
    assert_verify_clean(db_url)


def test_one_idempotency_key_sent_concurrently_applies_once(live: Any, db_url: str) -> None:
    _server, clients = live
    mid = setup_member(clients.client(), "samekey", 100)
    order = order_payload("same-key-order", mid, paid=5000, occurred_at=recent(10))
    redeem = {"member_id": mid, "reward": "ten"}
    tasks: list[Callable[[], Outcome]] = []
    for _ in range(16):
        tasks.append(
            lambda: clients.send("/v1/orders", order, "k-order", tries=1, timeout_first=False)
        )
        tasks.append(
            lambda: clients.send(
                "/v1/redemptions", redeem, "k-redeem", tries=1, timeout_first=False
            )
        )
    outcomes = run_parallel(32, tasks)
    for key in ("k-order", "k-redeem"):
        mine = [o for o in outcomes if o.key == key]
        answers = {(o.final[0], repr(o.final[1])) for o in mine}
        assert len(answers) == 1, answers
        assert next(iter(answers))[0] == 201
        assert sum(o.replayed for o in mine) == 15  # all but the one that did the work

    # The same key with another body is refused, and writes nothing.
    other = {**order, "amount_paid_minor": 6000}
    r = clients.client().post("/v1/orders", json=other, headers={"Idempotency-Key": "k-order"})
    assert r.status_code in (409, 422)
    assert r.json()["code"] == "idempotency_key_reused"

    db = Database(db_url)
    try:
        with db.transaction() as s:
            acct = ledger.get_account(s, mid)
            assert acct is not None
            assert (acct.available, acct.pending) == (90, 50)
            assert s.scalar(select(func.count()).select_from(Order)) == 1
            assert s.scalar(select(func.count()).select_from(Redemption)) == 1
            kinds = Counter(s.scalars(select(LedgerEntry.kind)).all())
            assert kinds == {"adjust": 1, "earn": 1, "redeem": 1}
    finally:
        db.dispose()
    assert_verify_clean(db_url)


def test_reward_stock_is_decremented_atomically(live: Any, db_url: str) -> None:
    """Stock 5, twenty members redeem at once: exactly five succeed."""
    _server, clients = live
    mids = [setup_member(clients.client(), f"stock-{i}", 100) for i in range(20)]
    tasks: list[Callable[[], Outcome]] = [
        lambda mid=mid: clients.send(
            "/v1/redemptions",
            {"member_id": mid, "reward": "scarce"},
            f"s-{mid}",
            tries=2,
            timeout_first=mid % 4 == 0,
        )
        for mid in mids
    ]
    outcomes = run_parallel(20, tasks)
    assert_consistent(outcomes)
    assert Counter(o.final[0] for o in outcomes) == {201: 5, 409: 15}
    assert {o.final[1]["code"] for o in outcomes if o.final[0] == 409} == {"out_of_stock"}
    winners = {o.final[1]["member_id"] for o in outcomes if o.final[0] == 201}
    db = Database(db_url)
    try:
        with db.transaction() as s:
            reward = s.scalar(select(Reward).where(Reward.code == "scarce"))
            assert reward is not None and reward.stock_remaining == 0
            rows = s.scalars(select(Redemption.member_id)).all()
            assert sorted(rows) == sorted(winners)
            for mid in mids:
                acct = ledger.get_account(s, mid)
                assert acct is not None
                assert acct.available == (90 if mid in winners else 100)
    finally:
        db.dispose()
    assert_verify_clean(db_url)


def test_fifty_parallel_redemptions_by_four_members_of_one_shared_pool(
    live: Any, db_url: str
) -> None:
    """A household: the owner's 100-point account shared with three members who may spend;
    50 ten-point redemptions spread over the four at once: exactly 10 succeed."""
    _server, clients = live
    owner = setup_member(clients.client(), "pool-owner", 100)
    others = [setup_member(clients.client(), f"pool-{i}", 0) for i in range(3)]
    db = Database(db_url)
    try:
        with db.transaction() as s:
            pool = ledger.account_id_of(s, owner)
            for mid in others:
                ledger.attach(s, pool, mid, can_spend=True, actor="test")
    finally:
        db.dispose()
    family = [owner, *others]
    tasks: list[Callable[[], Outcome]] = [
        lambda i=i: clients.send(
            "/v1/redemptions",
            {"member_id": family[i % 4], "reward": "ten"},
            f"pool-{i}",
            tries=2,
            timeout_first=i % 9 == 0,
        )
        for i in range(50)
    ]
    outcomes = run_parallel(50, tasks)
    assert_consistent(outcomes)
    assert Counter(o.final[0] for o in outcomes) == {201: 10, 409: 40}
    assert {o.final[1]["code"] for o in outcomes if o.final[0] == 409} == {"insufficient_points"}
    db = Database(db_url)
    try:
        with db.transaction() as s:
            for mid in family:  # every member sees the one, empty pool
                acct = ledger.get_account(s, mid)
                assert (acct.id, acct.available, acct.pending, acct.debt) == (pool, 0, 0, 0)
            winners = sorted(o.final[1]["id"] for o in outcomes if o.final[0] == 201)
            rows = s.execute(select(Redemption.id, Redemption.member_id)).all()
            assert sorted(r.id for r in rows) == winners
            # Each redeem entry is the pool's and names the member who redeemed.
            redeems = s.execute(
                select(LedgerEntry.account_id, LedgerEntry.member_id, Redemption.member_id)
                .join(Redemption, Redemption.entry_id == LedgerEntry.id)
                .where(LedgerEntry.kind == "redeem")
            ).all()
            assert len(redeems) == 10
            assert all(a == pool and by == who for a, by, who in redeems)
            deltas = s.scalars(
                select(LedgerEntry.delta_available)
                .where(LedgerEntry.account_id == pool)
                .order_by(LedgerEntry.id)
            ).all()
            running = 0
            for d in deltas:
                running += d
                assert running >= 0, f"the pool went negative: {list(deltas)}"
    finally:
        db.dispose()
    assert_verify_clean(db_url)
