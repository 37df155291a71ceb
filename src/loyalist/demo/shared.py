"""Demo households, paid-membership passes and a duplicate pair (issues 13 and 15).

* **Households** (家庭账户): a few members join a household right after they sign up (their
  own account is still empty, as the ledger requires) and earn into its pool from then on;
  at the end one main member has an invitation still waiting for an answer.
* **Passes** (付费会员, the 悦享卡 in programme.yaml): some frequent members buy the yearly
  pass during the history and come a little more often afterwards (the effect the pass ROI
  section of the analytics run measures against matched non-holders); one bought a few days
  ago is refunded, one bought a year ago runs out within the week.
* **A merge candidate**: a late joiner has the name and birthday of an earlier member (a
  second card opened in another shop); the duplicate search proposes the pair.

Random draws come from a stream of their own, so the rest of the demo is drawn as before
up to the buyers' changed order rates.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalist.errors import LoyalistError
from loyalist.household import service as households
from loyalist.household.schemas import InvitationCreate
from loyalist.kit.actor import Actor
from loyalist.ledger import service as ledger
from loyalist.merge import service as merges
from loyalist.models import Household, HouseholdInvitation, Member, MemberPass
from loyalist.passes import service as passes


class Persona(Protocol):
    """What is used of ``demo.build.Persona`` (not imported: build imports this module)."""

    index: int
    name: str
    birthday: date
    store: Any  # .city
    rate: float
    joined_at: datetime
    opening: int
    member_id: int


PASS_CODE = "club-pass"  # noqa: S105 - a pass (付费会员), not a password
BUYER_SHARE = 0.12  # of the members who order at least PASS_MIN_RATE times a month
PASS_MIN_RATE = 0.5
PASS_UPLIFT = 1.3  # holders order this much more often while the pass runs
HOUSEHOLD_SHARE = 0.015  # of the new members without a carried-over balance
MAX_HOUSEHOLDS = 6


@dataclass
class Shared:
    seed: int
    later: Callable[[datetime, Callable[[Session], None]], None]
    actor: Actor
    rng: random.Random = field(init=False)
    joiners: set[int] = field(default_factory=set)  # persona indexes that join a household
    owners: dict[int, int] = field(default_factory=dict)  # owner persona index -> household id
    sizes: dict[int, int] = field(default_factory=dict)  # household id -> members drawing
    joined: list[Persona] = field(default_factory=list)
    bought: int = 0
    refunded: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(f"shared:{self.seed}")

    # ── planning ────────────────────────────────────────────────────────────────────────
    def plan(self, personas: Sequence[Persona], start: datetime, end: datetime) -> None:
        """Choose the household joiners, the pass buyers (and when), and the duplicate."""
        rng = self.rng
        for p in personas:
            if not p.opening and rng.random() < HOUSEHOLD_SHARE:
                self.joiners.add(p.index)
        frequent = [p for p in personas if p.rate >= PASS_MIN_RATE and p.index not in self.joiners]
        for p in frequent:
            if rng.random() >= BUYER_SHARE:
                continue
            # some days to five months after joining, and at least ten days before the end
            span = min((end - timedelta(days=10) - p.joined_at).days, 150)
            if span < 5:
                continue
            at = p.joined_at + timedelta(days=rng.uniform(5, span), minutes=rng.randint(0, 600))
            self.later(at, self._buy_fn(p))
        # One bought a few days ago and taken back the next day (within the refund window).
        recent = [p for p in frequent if p.joined_at < end - timedelta(days=30)]
        if recent:
            p = rng.choice(recent)
            at = end - timedelta(days=3, hours=rng.randint(1, 6))
            self.later(at, self._buy_fn(p, refund_after=timedelta(days=1)))
        # One bought a year ago (less 4 days): the term ends within the week.
        early = [p for p in frequent if p.joined_at < end - timedelta(days=362)]
        if early:
            p = rng.choice(early)
            self.later(end - timedelta(days=361), self._buy_fn(p))
        # A late joiner opens a second card: same name and birthday as an earlier member.
        late = [p for p in personas if p.joined_at > start + (end - start) * 0.8]
        if len(late) > 1 and personas:
            copy, original = rng.choice(late), personas[0]
            if copy is not original:
                copy.name, copy.birthday = original.name, original.birthday

    # ── passes ──────────────────────────────────────────────────────────────────────────
    def _buy_fn(
        self, p: Persona, refund_after: timedelta | None = None
    ) -> Callable[[Session], None]:
        def buy(s: Session) -> None:
            if not p.member_id:
                return
            member = s.get(Member, p.member_id)
            if member is None:
                return
            try:
                with s.begin_nested():
                    ledger.lock(s, member.id, member.org_path)
                    created, row = passes.buy(
                        s, self.actor, member, PASS_CODE, purchase_key=f"demo-pass-{p.index}"
                    )
            except LoyalistError:
                return
            if not created:
                return
            self.bought += 1
            if refund_after is None:
                p.rate *= PASS_UPLIFT  # the holder comes a little more often
                return
            pass_id, member_id = row.id, member.id

            def refund(s: Session) -> None:
                with s.begin_nested():
                    passes.refund(s, self.actor, member_id, pass_id)
                self.refunded += 1

            self.later(row.purchased_at + refund_after, refund)

        return buy

    # ── households ──────────────────────────────────────────────────────────────────────
    def after_join(self, s: Session, p: Persona) -> None:
        """Right after ``p`` joined (their account still empty): join a household."""
        if p.index in self.joiners:
            self._join_household(s, p)
        else:
            self.joined.append(p)

    def _owner_for(self, p: Persona) -> Persona | None:
        rooms = [
            o
            for o in self.joined
            if o.index in self.owners and self.sizes[self.owners[o.index]] < 3
        ]
        same_city = [o for o in rooms if o.store.city == p.store.city]
        if same_city:
            return self.rng.choice(same_city)
        if len(self.owners) >= MAX_HOUSEHOLDS:
            return self.rng.choice(rooms) if rooms else None
        near = [o for o in self.joined[-300:] if o.store.city == p.store.city] or self.joined[-300:]
        return self.rng.choice(near) if near else None

    def _join_household(self, s: Session, p: Persona) -> None:
        owner = self._owner_for(p)
        if owner is None:
            return
        try:
            with s.begin_nested():
                _created, h = households.create(s, self.actor, owner.member_id)
                _c, inv = households.invite(
                    s, self.actor, h.id, InvitationCreate(member_id=p.member_id, can_spend=True)
                )
                households.accept(s, self.actor, inv.id)
        except LoyalistError:
            return
        self.owners[owner.index] = h.id
        self.sizes[h.id] = self.sizes.get(h.id, 0) + 1

    def finish(self, s: Session) -> None:
        """A main member's invitation waiting for an answer; the duplicate pair proposed."""
        open_ = s.scalar(
            select(HouseholdInvitation.id).where(HouseholdInvitation.status == "pending").limit(1)
        )
        hid = s.scalar(select(Household.id).where(Household.status == "active").limit(1))
        if open_ is None and hid is not None:
            drawing = set(self.joiners) | set(self.owners)
            for p in reversed(self.joined):
                if p.member_id and p.index not in drawing:
                    try:
                        with s.begin_nested():
                            households.invite(
                                s,
                                self.actor,
                                hid,
                                InvitationCreate(member_id=p.member_id, can_spend=False),
                            )
                    except LoyalistError:
                        continue
                    break
        merges.find_candidates(s)


def shared_summary(s: Session) -> str:
    """Households (active, members drawing, invitations pending) and passes by status."""
    n_house = s.scalar(
        select(func.count()).select_from(Household).where(Household.status == "active")
    )
    drawing = s.scalar(
        select(func.count())
        .select_from(HouseholdInvitation)
        .where(HouseholdInvitation.status == "accepted")
    )
    pending = s.scalar(
        select(func.count())
        .select_from(HouseholdInvitation)
        .where(HouseholdInvitation.status == "pending")
    )
    by_status = {
        str(k): int(v)
        for k, v in s.execute(select(MemberPass.status, func.count()).group_by(MemberPass.status))
    }
    held = ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none"
    return (
        f"households {n_house or 0} ({drawing or 0} members joined, {pending or 0} invitation "
        f"pending) · passes: {held}"
    )
