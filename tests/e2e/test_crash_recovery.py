"""A real server SIGKILLed while 16 clients write; after a restart the clients retry with
their Idempotency-Keys: every write applies exactly once, every acknowledged answer is
replayed unchanged, and ``loyalist ledger verify`` is clean."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.server import Server, cli, prepare
from tests.support import order_payload

from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.models import IdempotencyRecord, LedgerEntry, Order

pytestmark = pytest.mark.timeout(300)

MEMBERS = 8
WRITES = 240
KILL_AFTER = 80  # acknowledged answers before the server is killed


@dataclass
class Write:
    key: str
    path: str
    body: dict[str, Any]
    member: int
    points: int  # what it adds to the member's balance (pending or available)
    answers: list[tuple[int, Any, bool]] = field(default_factory=list)  # status, body, replayed
    failures: int = 0


def writes(member_ids: list[int]) -> list[Write]:
    when = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    out: list[Write] = []
    for i in range(WRITES):
        mid = member_ids[i % MEMBERS]
        if i % 3 == 2:  # an adjustment: nothing but the key makes it idempotent
            points = 10 + i
            body: dict[str, Any] = {"points": points, "reason": f"crash test {i}"}
            out.append(Write(f"adj-{i}", f"/v1/members/{mid}/adjustments", body, mid, points))
        else:
            paid = (i % 40 + 1) * 100  # ¥1..¥40: 1..40 points
            body = order_payload(f"crash-{i}", mid, paid=paid, occurred_at=when)
            out.append(Write(f"ord-{i}", "/v1/orders", body, mid, paid // 100))
    return out


def send(client: httpx.Client, w: Write) -> bool:
    """One try; True when the server answered."""
    try:
        r = client.post(w.path, json=w.body, headers={"Idempotency-Key": w.key})
    except httpx.TransportError:
        w.failures += 1
        return False
    w.answers.append((r.status_code, r.json(), r.headers.get("Idempotent-Replayed") == "true"))
    return True


class Pool:
    """One HTTP client per thread, all with one API key."""

    def __init__(self, server: Server, key: str) -> None:
        self.server, self.key = server, key
        self.local = threading.local()
        self.made: list[httpx.Client] = []

    def __call__(self) -> httpx.Client:
        c: httpx.Client | None = getattr(self.local, "c", None)
        if c is None:
            c = httpx.Client(
                base_url=self.server.url,
                headers={"Authorization": f"Bearer {self.key}"},
                timeout=30,
            )
            self.local.c = c
            self.made.append(c)
        return c

    def close(self) -> None:
        for c in self.made:
            c.close()


def test_sigkill_mid_load_then_retries_apply_exactly_once(db_url: str, tmp_path: Path) -> None:
    world = prepare(db_url, [])
    first = Server(db_url, tmp_path / "first.log")
    first.start()
    try:
        setup = httpx.Client(
            base_url=first.url, headers={"Authorization": f"Bearer {world.keys['hq']}"}
        )
        member_ids = []
        for i in range(MEMBERS):
            r = setup.post("/v1/members", json={"external_id": f"crash-member-{i}"})
            assert r.status_code == 201, r.text
            member_ids.append(r.json()["id"])
        setup.close()
        todo = writes(member_ids)

        # Phase 1: 16 clients write; the server dies under them after KILL_AFTER answers.
        acked = threading.Semaphore(0)
        client = Pool(first, world.keys["hq"])

        def phase1(w: Write) -> None:
            if send(client(), w):
                acked.release()

        with ThreadPoolExecutor(16) as ex:
            futures = [ex.submit(phase1, w) for w in todo]
            for _ in range(KILL_AFTER):
                assert acked.acquire(timeout=60), "the server stopped answering before the kill"
            first.kill()
            for f in futures:
                f.result()
        client.close()
    finally:
        first.stop()

    answered = [w for w in todo if w.answers]
    unanswered = [w for w in todo if not w.answers]
    assert KILL_AFTER <= len(answered) < WRITES
    assert unanswered, "the kill came too late to interrupt anything"
    for w in answered:
        assert w.answers[0][0] == 201, (w.key, w.answers)

    # Phase 2: a new server on the same database; every client retries every write.
    second = Server(db_url, tmp_path / "second.log")
    second.start()
    try:
        client = Pool(second, world.keys["hq"])

        def phase2(w: Write) -> None:
            for _ in range(3):
                if send(client(), w):
                    return
            raise AssertionError(f"{w.key}: no answer after the restart")

        with ThreadPoolExecutor(16) as ex:
            list(ex.map(phase2, todo))
        client.close()
        assert second.errors_logged() == ""
    finally:
        second.stop()

    for w in todo:
        # Answered before the kill: the retry is the very same answer, replayed. Never
        # answered: one answer now (applied now, or committed before the kill and replayed).
        assert [a[0] for a in w.answers] in ([201], [201, 201]), (w.key, w.answers)
        if len(w.answers) == 2:
            (_, b1, r1), (_, b2, r2) = w.answers
            assert (b1, r1, r2) == (b2, False, True), w.key

    db = Database(db_url)
    try:
        with db.transaction() as s:
            orders = s.scalar(select(func.count()).select_from(Order))
            assert orders == sum(1 for w in todo if w.path == "/v1/orders")
            per_source = s.execute(
                select(LedgerEntry.source_type, LedgerEntry.kind, func.count()).group_by(
                    LedgerEntry.source_type, LedgerEntry.kind
                )
            ).all()
            assert sorted(per_source) == sorted(
                [
                    ("order", "earn", sum(1 for w in todo if w.path == "/v1/orders")),
                    ("staff", "adjust", sum(1 for w in todo if w.key.startswith("adj-"))),
                ]
            )
            assert s.scalar(select(func.count()).select_from(IdempotencyRecord)) == WRITES
            for mid in member_ids:
                acct = ledger.get_account(s, mid)
                assert acct is not None
                expected = sum(w.points for w in todo if w.member == mid)
                assert acct.available + acct.pending == expected, mid
                assert acct.debt == 0
        # every acknowledged order is there with the answer the client was given
        with db.transaction() as s:
            for w in answered:
                if w.path == "/v1/orders":
                    order = s.scalar(
                        select(Order).where(Order.external_id == w.body["external_id"])
                    )
                    assert order is not None and order.id == w.answers[0][1]["id"]
    finally:
        db.dispose()
    res = cli(db_url, "ledger", "verify")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"ledger verified: {MEMBERS} account(s)" in res.stdout
