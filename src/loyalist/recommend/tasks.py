"""The nightly recommendations job (``recommend.compute``) and the ``{recommendations}``
variable of message templates."""

from __future__ import annotations

from sqlalchemy.orm import Session

from loyalist.jobs.registry import JobContext, job_kind, schedule
from loyalist.messaging import outbox
from loyalist.models import Member
from loyalist.recommend import service


@job_kind(service.COMPUTE, max_attempts=3)
def compute(ctx: JobContext) -> None:
    service.compute(ctx.session, ctx.now)


# Nightly, after the day's orders (programme-local time).
schedule(service.COMPUTE, "30 3 * * *")


def _variable(session: Session, member: Member, locale: str) -> str:
    """``{recommendations}`` in a message template: the member's suggestions now (their
    own with personalisation consent, else their store's popular items)."""
    return service.summary_line(service.for_loaded(session, member, limit=3), locale)


outbox.register_variable("recommendations", _variable)
