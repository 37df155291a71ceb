"""The daily ledger checkpoint job (``ledger.checkpoint``, 00:20 programme time)."""

from __future__ import annotations

from pathlib import Path

from loyalist.config import get_settings
from loyalist.integrity import service
from loyalist.jobs import registry
from loyalist.jobs.registry import JobContext, job_kind
from loyalist.programme import service as programmes
from loyalist.programme.errors import NoProgramme

CHECKPOINT = "ledger.checkpoint"


def checkpoint_dir() -> Path:
    return Path(get_settings().ledger_checkpoint_dir)


@job_kind(CHECKPOINT, max_attempts=5)
def checkpoint(ctx: JobContext) -> None:
    """Export every account's chain head (file + event), dated by the programme's day."""
    try:
        tz = programmes.active(ctx.session)[1].tz
    except NoProgramme:
        from zoneinfo import ZoneInfo

        tz = ZoneInfo("Asia/Shanghai")
    local_date = ctx.now.astimezone(tz).date().isoformat()
    service.take(ctx.session, ctx.now, local_date, checkpoint_dir())


registry.schedule(CHECKPOINT, "20 0 * * *")
