"""RFM in the programme (issue 15 item 3): the nightly ``insights.rfm`` job.

Every night (``RFM_CRON``, the programme's wall clock) the job scores every member who has
bought, as of the programme-local day it runs for, with ``loyalist.analytics`` (through
``insights.compute``, the one bridge that imports it):

* R, F and M quintile scores (1..5, 5 best), the RFM segment and P(alive) from a BG/NBD
  fitted on the same orders go into ``member_rfm`` (one row per member, ``computed_at``);
  rows of members who no longer have orders (erased) are removed;
* the segment is applied as the tag ``rfm:<segment>`` (``rfm:champions``,
  ``rfm:cant_lose_them``, ...) and any other ``rfm:`` tag of the member is removed;
* when the programme's tiers qualify on RFM (``tiers.metric: rfm``), every scored member is
  given the instant upgrade the new score allows through the tier service (a ``tier_change``
  row and a ``tier.changed`` event, as for any upgrade); downgrades follow the programme's
  periodic re-evaluation (``tiers.reevaluate``), which reads the same table.

The whole run is one transaction. Running it again for the same day writes the same rows
and tags and changes no tier a second time (an instant upgrade never repeats).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from loyalist.errors import LoyalistError
from loyalist.jobs import registry
from loyalist.jobs.registry import JobContext, job_kind
from loyalist.kit.clock import utcnow
from loyalist.kit.localtime import local_day
from loyalist.models import Member, MemberRfm, MemberTag
from loyalist.programme import service as programmes
from loyalist.programme.schemas import TierMetric
from loyalist.tier import service as tiers

JOB_KIND = "insights.rfm"
RFM_CRON = "30 2 * * *"  # 02:30 programme time, after the day's orders
TAG_PREFIX = "rfm:"


def segment_tag(segment: str) -> str:
    """``Can't lose them`` -> ``rfm:cant_lose_them``."""
    slug = re.sub(r"[^a-z0-9]+", "_", segment.lower().replace("'", "")).strip("_")
    return TAG_PREFIX + slug


@dataclass(frozen=True, slots=True)
class RfmRefresh:
    as_of: date
    scored: int
    removed: int
    upgraded: int
    tags_changed: int
    p_alive_error: str | None


def refresh(session: Session, now: datetime) -> RfmRefresh:
    """Score every member as of ``now``'s programme-local day (see the module rules)."""
    from loyalist.insights import compute  # Polars and SciPy load only where this runs

    version, programme = programmes.active(session)
    as_of = local_day(programme.tz, now)
    tx = compute.until(compute.read_orders(session.connection(), "/", programme.timezone), as_of)
    rows, error = compute.member_rfm(tx, as_of)
    weights = programme.tiers.rfm_weights
    existing = {r.member_id: r for r in session.scalars(select(MemberRfm))}
    scored: set[int] = set()
    for row in rows:
        mid = int(row["member_id"])
        scored.add(mid)
        values: dict[str, Any] = {
            **row,
            "score": weights.score(row["r_score"], row["f_score"], row["m_score"]),
            "as_of": as_of,
            "computed_at": now,
        }
        current = existing.get(mid)
        if current is None:
            session.add(MemberRfm(**values))
        else:
            for k, v in values.items():
                setattr(current, k, v)
    gone = sorted(set(existing) - scored)
    if gone:
        session.execute(delete(MemberRfm).where(MemberRfm.member_id.in_(gone)))
    session.flush()
    changed = _apply_tags(session, {int(r["member_id"]): segment_tag(r["segment"]) for r in rows})
    if gone:
        session.execute(
            delete(MemberTag).where(
                MemberTag.member_id.in_(gone), MemberTag.tag.startswith(TAG_PREFIX)
            )
        )
    upgraded = 0
    if programme.tiers.metric is TierMetric.RFM:
        for mid in sorted(scored):
            member = session.get(Member, mid)
            if member is None:
                continue
            if tiers.upgrade_if_qualified(session, member, programme, version, now) is not None:
                upgraded += 1
    session.flush()
    return RfmRefresh(as_of, len(scored), len(gone), upgraded, changed, error)


def _apply_tags(session: Session, wanted: dict[int, str]) -> int:
    """Give each member exactly the one ``rfm:`` tag of their segment; how many changed."""
    have: dict[int, set[str]] = {}
    for mid, tag in session.execute(
        select(MemberTag.member_id, MemberTag.tag).where(MemberTag.tag.startswith(TAG_PREFIX))
    ):
        have.setdefault(int(mid), set()).add(str(tag))
    changed = 0
    now = utcnow()
    for mid, tag in sorted(wanted.items()):
        old = have.get(mid, set())
        if old == {tag}:
            continue
        changed += 1
        stale = sorted(old - {tag})
        if stale:
            session.execute(
                delete(MemberTag).where(MemberTag.member_id == mid, MemberTag.tag.in_(stale))
            )
        if tag not in old:
            session.add(MemberTag(member_id=mid, tag=tag, created_at=now))
    session.flush()
    return changed


@job_kind(JOB_KIND, max_attempts=3)
def nightly(ctx: JobContext) -> None:
    try:
        programmes.active(ctx.session)
    except LoyalistError:  # no programme published yet: nothing to score against
        return
    refresh(ctx.session, ctx.now)


registry.schedule(JOB_KIND, RFM_CRON)
