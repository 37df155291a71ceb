"""Pure ledger rules: which lots a debit consumes, and when points expire or unlock.

Rules
-----
* **FEFO allocation** (``allocate_fefo``): a debit of ``points`` (> 0) consumes open lots
  soonest ``expires_at`` first; lots that never expire come last; equal expiry is broken by
  lot id (lowest first). Lots with ``remaining <= 0`` are skipped. A lot is never asked for
  more than its ``remaining``. If the lots together hold fewer points than requested, nothing
  is allocated and ``InsufficientLots(available, requested)`` is raised.
* **Expiry** (``expires_at``) returns the aware UTC instant from which the points are no
  longer valid (the lot is valid while ``now < expires_at``). Dates are taken in the
  programme's time zone:

  - ``rolling_months`` N: the start of the local day after (local date earned + N months,
    the day clamped to the end of the month). Earned 2026-01-31 with N=1 -> valid through
    2026-02-28, expires at the start of 2026-03-01.
  - ``end_of_year`` N: the start of 1 January of local year (year earned + N + 1); N=0 means
    the points last to the end of the year they were earned.
  - ``end_of_month`` N: the start of the 1st of local month (month earned + N + 1).
  - ``never``: ``None``.

  The result is always strictly after ``earned_at``.
* **Pending** (``available_at``): with ``pending_days`` 0 points are spendable at once
  (``earned_at``, as UTC); otherwise from the start of local day (local date earned +
  pending_days + 1), i.e. after ``pending_days`` full local days following the day earned.
* **Expiry reminders** (``reminder_due``): the last valid local day is the local date of
  ``expires_at - 1µs``. The reminder for offset ``d`` (days before expiry) is due from the
  start of local day (last valid day - d) until ``expires_at``. The function returns the
  offset of the reminder currently in force: among offsets whose moment is ``<= now`` it is
  the one whose moment is the latest, i.e. the *smallest* such ``d``; ``None`` when no
  reminder moment has been reached yet or the points have already expired. A job that
  remembers which (lot, offset) pairs it has sent can therefore send 30, then 7, then 1
  as each comes due, and after an outage sends only the most recent one.

Day boundaries come from ``loyalist.kit.localtime`` and are correct across DST changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from loyalist.kit.localtime import add_months, local_day, require_aware, start_of_local_day
from loyalist.programme.schemas import Expiry, ExpiryKind

__all__ = [
    "InsufficientLots",
    "LotView",
    "allocate_fefo",
    "available_at",
    "expires_at",
    "local_day",
    "reminder_due",
    "start_of_local_day",
]

_MICROSECOND = timedelta(microseconds=1)


class InsufficientLots(Exception):
    """The open lots hold fewer points than a debit asks for."""

    def __init__(self, available: int, requested: int) -> None:
        super().__init__(f"only {available} points available in open lots, {requested} requested")
        self.available = available
        self.requested = requested


@dataclass(frozen=True, slots=True)
class LotView:
    """What allocation needs to know about an open lot."""

    id: int
    remaining: int
    expires_at: datetime | None


def _fefo_key(lot: LotView) -> tuple[int, datetime, int]:
    if lot.expires_at is None:
        return (1, datetime.min.replace(tzinfo=UTC), lot.id)
    return (0, require_aware(lot.expires_at, "expires_at").astimezone(UTC), lot.id)


def allocate_fefo(lots: Sequence[LotView], points: int) -> list[tuple[int, int]]:
    """Split a debit of ``points`` over ``lots``, first-expiring-first-out.

    Returns ``(lot_id, taken)`` pairs in consumption order; every ``taken`` is > 0 and at most
    that lot's ``remaining``, and the takes sum to ``points``.

    Raises ``ValueError`` when ``points <= 0`` and ``InsufficientLots`` when the lots with
    a positive remainder hold fewer than ``points``.
    """
    if points <= 0:
        raise ValueError(f"points to allocate must be > 0, got {points}")
    open_lots = sorted((lot for lot in lots if lot.remaining > 0), key=_fefo_key)
    available = sum(lot.remaining for lot in open_lots)
    if available < points:
        raise InsufficientLots(available, points)
    taken: list[tuple[int, int]] = []
    left = points
    for lot in open_lots:
        if left == 0:
            break
        take = min(lot.remaining, left)
        taken.append((lot.id, take))
        left -= take
    return taken


def expires_at(expiry: Expiry, tz: ZoneInfo, earned_at: datetime) -> datetime | None:
    """The aware UTC instant from which points earned at ``earned_at`` are no longer valid.

    See the module docstring for each kind; ``never`` gives ``None``.
    """
    day = local_day(tz, earned_at)
    if expiry.kind is ExpiryKind.NEVER:
        return None
    if expiry.kind is ExpiryKind.ROLLING_MONTHS:
        assert expiry.months is not None  # guaranteed by the schema
        last_valid = add_months(day, expiry.months)
        return start_of_local_day(tz, last_valid + timedelta(days=1))
    if expiry.kind is ExpiryKind.END_OF_YEAR:
        assert expiry.years is not None
        return start_of_local_day(tz, date(day.year + expiry.years + 1, 1, 1))
    if expiry.kind is ExpiryKind.END_OF_MONTH:
        assert expiry.months is not None
        return start_of_local_day(tz, add_months(day.replace(day=1), expiry.months + 1))
    raise ValueError(f"unknown expiry kind {expiry.kind!r}")  # pragma: no cover


def available_at(pending_days: int, tz: ZoneInfo, earned_at: datetime) -> datetime:
    """When points earned at ``earned_at`` become spendable (aware UTC).

    ``pending_days`` 0: ``earned_at`` itself. Otherwise the start of local day
    (local date of ``earned_at`` + ``pending_days`` + 1).
    """
    require_aware(earned_at, "earned_at")
    if pending_days < 0:
        raise ValueError(f"pending_days must be >= 0, got {pending_days}")
    if pending_days == 0:
        return earned_at.astimezone(UTC)
    return start_of_local_day(tz, local_day(tz, earned_at) + timedelta(days=pending_days + 1))


def reminder_due(
    expires_at: datetime, reminder_days: Sequence[int], tz: ZoneInfo, now: datetime
) -> int | None:
    """The reminder offset (days before expiry) currently in force, or ``None``.

    The moment for offset ``d`` is ``start_of_local_day(local_day(expires_at - 1µs) - d)``.
    Returns the smallest ``d`` whose moment is ``<= now``, provided ``now < expires_at``.
    """
    require_aware(expires_at, "expires_at")
    require_aware(now, "now")
    if now >= expires_at:
        return None
    last_valid = local_day(tz, expires_at - _MICROSECOND)
    due = [
        d
        for d in set(reminder_days)
        if start_of_local_day(tz, last_valid - timedelta(days=d)) <= now
    ]
    return min(due) if due else None


# --- the hash chain (tamper evidence) ------------------------------------------------------

#: The ``prev_hash`` of an account's first entry.
GENESIS = "0" * 64

#: The entry fields a hash covers, in this order (``chain_seq`` and ``prev_hash`` first).
CHAINED_FIELDS = (
    "account_id",
    "member_id",
    "kind",
    "delta_available",
    "delta_pending",
    "delta_debt",
    "source_type",
    "source_id",
    "actor",
    "reason",
    "corrects_entry_id",
    "programme_version",
    "details",
    "dedupe_key",
    "occurred_at",
    "created_at",
)


def _canonical(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def entry_hash(prev_hash: str, chain_seq: int, fields: dict[str, object]) -> str:
    """SHA-256 (hex) of an entry's content chained to its predecessor's hash.

    The message is canonical JSON (sorted keys, no spaces, UTF-8) of ``[chain_seq,
    prev_hash, {field: value}]`` over :data:`CHAINED_FIELDS`; times as UTC with
    microseconds. An auditor can recompute it with any SHA-256 and JSON library.
    """
    body = {name: _canonical(fields.get(name)) for name in CHAINED_FIELDS}
    message = json.dumps(
        [chain_seq, prev_hash, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(message.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainLink:
    """One entry as the chain sees it: stored hashes and the hash its content gives now."""

    id: int
    seq: int | None
    prev_hash: str | None
    stored_hash: str | None
    computed_hash: str


def check_chain(links: Sequence[ChainLink], head_seq: int, head_hash: str | None) -> list[str]:
    """What is wrong with one account's chain, each problem naming the entry.

    ``links`` are the account's entries; ``head_seq``/``head_hash`` what the account row
    says its last entry is. An edited entry no longer matches its hash (or, re-hashed, no
    longer matches what the next entry chained to); a deleted one leaves a gap in the
    sequence (or the head past the last entry); an inserted one has no place in the chain
    (no sequence, a sequence already taken, or beyond the head).
    """
    problems: list[str] = []
    for link in links:
        if link.seq is None or link.stored_hash is None or link.prev_hash is None:
            problems.append(f"entry {link.id}: inserted outside the ledger (not in the chain)")
    chained = sorted((x for x in links if x.seq is not None and x.stored_hash), key=_seq_id)
    expected_seq, expected_prev = 1, GENESIS
    last: ChainLink | None = None
    i = 0
    while i < len(chained):
        seq = chained[i].seq
        group = []
        while i < len(chained) and chained[i].seq == seq:
            group.append(chained[i])
            i += 1
        nxt = chained[i] if i < len(chained) else None
        successor = nxt.prev_hash if nxt is not None else head_hash
        genuine = _genuine(group, expected_prev, successor)
        for other in group:
            if other is not genuine:
                problems.append(
                    f"entry {other.id}: inserted outside the ledger "
                    f"(sequence {seq} is entry {genuine.id}'s)"
                )
        assert seq is not None
        if seq > expected_seq:
            gap = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
            after = f"entry {last.id}" if last else "the start"
            problems.append(
                f"entry {genuine.id}: the entry before it (sequence {gap}, after {after}) "
                "was deleted"
            )
        if genuine.computed_hash != genuine.stored_hash:
            problems.append(f"entry {genuine.id}: edited (its content does not match its hash)")
        elif seq == expected_seq and genuine.prev_hash != expected_prev and last is not None:
            problems.append(
                f"entry {last.id}: edited and re-hashed (entry {genuine.id} chained to "
                "another hash)"
            )
        expected_seq, expected_prev, last = seq + 1, genuine.stored_hash or "", genuine
    last_seq = expected_seq - 1
    if head_seq > last_seq:
        after = f"entry {last.id}" if last else "the start"
        gap = f"{last_seq + 1}" if head_seq == last_seq + 1 else f"{last_seq + 1}..{head_seq}"
        problems.append(f"the last entry (sequence {gap}, after {after}) was deleted")
    elif head_seq < last_seq and last is not None:
        problems.append(
            f"entry {last.id}: inserted outside the ledger (past the account's chain head "
            f"{head_seq})"
        )
    elif last is not None and head_hash != last.stored_hash:
        problems.append(f"entry {last.id}: edited and re-hashed (the account's head differs)")
    return problems


def _seq_id(link: ChainLink) -> tuple[int, int]:
    return (link.seq or 0, link.id)


def _genuine(group: list[ChainLink], prev: str, successor: str | None) -> ChainLink:
    """Of entries sharing a sequence number, the one that belongs to the chain."""

    def score(x: ChainLink) -> tuple[int, int, int, int]:
        return (
            x.computed_hash == x.stored_hash,
            x.prev_hash == prev,
            x.stored_hash == successor,
            -x.id,
        )

    return max(group, key=score)
