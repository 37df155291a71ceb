"""The hot-member test on a household's pool, the household formed through the API
(/v1/households: invite, accept): 50 parallel ten-point redemptions by the four members of
a 100-point pool against a real server process (threads, one HTTP client each, every
request with an Idempotency-Key, some retried after a client-side timeout) → exactly 10
succeed, the pool never goes negative, each redeem entry names its member, the household
view adds up, and ``loyalist ledger verify`` is clean. SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from tests.e2e import test_concurrency
from tests.e2e.test_concurrency import (
    Outcome,
    assert_consistent,
    assert_verify_clean,
    run_parallel,
    setup_member,
)

from loyalist.kit.db import Database
from loyalist.models import LedgerEntry, Redemption

pytestmark = pytest.mark.timeout(300)
live = test_concurrency.live  # the real server and its clients (a fixture)


def test_fifty_parallel_redemptions_by_a_household_of_four_on_a_hundred_points(
    live: Any, db_url: str
) -> None:
    _server, clients = live
    c = clients.client()
    main = setup_member(c, "hh-main", 100)
    others = [setup_member(c, f"hh-{i}", 0) for i in range(3)]
    r = c.post("/v1/households", json={"member_id": main})
    assert r.status_code == 201, r.text
    hid, pool = r.json()["id"], r.json()["pool"]["account_id"]
    for mid in others:
        r = c.post(f"/v1/households/{hid}/invitations", json={"member_id": mid, "can_spend": True})
        assert r.status_code == 201, r.text
        r = c.post(f"/v1/households/invitations/{r.json()['id']}/accept")
        assert r.status_code == 200, r.text
    family = [main, *others]
    tasks: list[Callable[[], Outcome]] = [
        lambda i=i: clients.send(
            "/v1/redemptions",
            {"member_id": family[i % 4], "reward": "ten"},
            f"hh-{i}",
            tries=2,
            timeout_first=i % 7 == 0,
        )
        for i in range(50)
    ]
    outcomes = run_parallel(50, tasks)
    assert_consistent(outcomes)
    assert Counter(o.final[0] for o in outcomes) == {201: 10, 409: 40}
    assert {o.final[1]["code"] for o in outcomes if o.final[0] == 409} == {"insufficient_points"}
    winners = Counter(o.final[1]["member_id"] for o in outcomes if o.final[0] == 201)

    h = c.get(f"/v1/households/{hid}").json()
    assert (h["pool"]["available"], h["pool"]["pending"], h["pool"]["debt"]) == (0, 0, 0)
    assert {m["member_id"]: m["spent"] for m in h["members"]} == {
        mid: 10 * winners.get(mid, 0) for mid in family
    }
    for mid in family:
        assert c.get(f"/v1/members/{mid}").json()["points"]["available"] == 0
    db = Database(db_url)
    try:
        with db.transaction() as s:
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
