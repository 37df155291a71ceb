"""The hash chain's pure rules: an intact chain is clean; every edit, deletion or insertion
is reported and names the entry it concerns."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from loyalist.ledger.domain import GENESIS, ChainLink, check_chain, entry_hash

T0 = datetime(2026, 6, 10, 4, 0, tzinfo=UTC)


def fields(i: int, points: int) -> dict[str, object]:
    return {
        "account_id": 7,
        "member_id": 3,
        "kind": "earn",
        "delta_available": points,
        "delta_pending": 0,
        "delta_debt": 0,
        "source_type": "order",
        "source_id": f"o{i}",
        "actor": None,
        "reason": "订单积分",
        "corrects_entry_id": None,
        "programme_version": 1,
        "details": {"lots": [[i, points]], "z": 1, "a": [1, 2]},
        "dedupe_key": f"order:{i}:earn",
        "occurred_at": T0,
        "created_at": T0,
    }


def chain(points: list[int]) -> tuple[list[ChainLink], list[dict[str, object]]]:
    links, contents, prev = [], [], GENESIS
    for i, p in enumerate(points, start=1):
        f = fields(i, p)
        h = entry_hash(prev, i, f)
        links.append(ChainLink(id=100 + i, seq=i, prev_hash=prev, stored_hash=h, computed_hash=h))
        contents.append(f)
        prev = h
    return links, contents


def test_the_hash_is_canonical_sha256_over_sorted_json() -> None:
    f = fields(1, 10)
    h = entry_hash(GENESIS, 1, f)
    assert h == entry_hash(GENESIS, 1, dict(reversed(list(f.items()))))
    assert h == entry_hash(GENESIS, 1, {**f, "details": {"a": [1, 2], "z": 1, "lots": [[1, 10]]}})
    assert len(h) == 64 and int(h, 16) >= 0
    # a naive UTC time and the aware one hash alike (SQLite hands back naive values)
    assert h == entry_hash(GENESIS, 1, {**f, "occurred_at": T0.replace(tzinfo=None)})
    assert h != entry_hash(GENESIS, 2, f)
    assert h != entry_hash("1" * 64, 1, f)
    assert h != entry_hash(GENESIS, 1, {**f, "reason": "订单积分 "})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=12))
def test_an_intact_chain_is_clean(points: list[int]) -> None:
    links, _ = chain(points)
    assert check_chain(links, len(links), links[-1].stored_hash) == []
    assert check_chain([], 0, None) == []


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 10_000), min_size=2, max_size=12), st.data())
def test_every_tampering_is_named(points: list[int], data: st.DataObject) -> None:
    links, contents = chain(points)
    n = len(links)
    head_seq, head = n, links[-1].stored_hash
    at = data.draw(st.integers(0, n - 1), label="at")
    victim = links[at]
    how = data.draw(st.sampled_from(["edit", "rehash", "delete", "insert", "copy", "append"]))
    if how == "edit":  # content changed, hash left alone
        bad = {**contents[at], "delta_available": points[at] + 1}
        links[at] = replace(victim, computed_hash=entry_hash(victim.prev_hash or "", at + 1, bad))
        expected = f"entry {victim.id}: edited (its content does not match its hash)"
    elif how == "rehash":  # content changed and its own hash recomputed
        bad = {**contents[at], "reason": "fixed"}
        h = entry_hash(victim.prev_hash or "", at + 1, bad)
        links[at] = replace(victim, stored_hash=h, computed_hash=h)
        if at == n - 1:
            expected = f"entry {victim.id}: edited and re-hashed (the account's head differs)"
        else:
            expected = f"entry {victim.id}: edited and re-hashed (entry {links[at + 1].id} chained"
    elif how == "delete":
        del links[at]
        if at == n - 1:
            expected = f"the last entry (sequence {n}, after "
        else:
            expected = f"entry {links[at].id}: the entry before it (sequence {at + 1}, after "
    elif how == "insert":  # a row written with SQL, no chain fields
        links.append(ChainLink(999, None, None, None, "x" * 64))
        expected = "entry 999: inserted outside the ledger (not in the chain)"
    elif how == "copy":  # a copy of an entry with its chain fields
        links.append(replace(victim, id=999))
        expected = f"entry 999: inserted outside the ledger (sequence {at + 1} is entry {victim.id}"
    else:  # appended after the head with a valid hash, the account row left alone
        h = entry_hash(head or "", n + 1, fields(n + 1, 5))
        links.append(ChainLink(999, n + 1, head, h, h))
        expected = f"entry 999: inserted outside the ledger (past the account's chain head {n})"
    problems = check_chain(links, head_seq, head)
    assert any(p.startswith(expected) for p in problems), (how, at, problems)
    assert len(problems) == 1, problems
