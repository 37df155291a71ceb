"""The one composition root: job kinds, schedules, consumers and pollers.

``configure()`` imports every module that registers something (job kinds with
``@job_kind``, schedules with ``registry.schedule``, event consumers …) so each process
that runs work — ``loyalist worker``, the worker embedded in ``loyalist serve``, ``loyalist
jobs run`` — knows all of it. It is idempotent. ``pollers()`` returns the tick functions the
worker calls on every loop besides running jobs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from loyalist.kit.db import Database

# Modules whose import registers job kinds, schedules, consumers or actions.
# Append new ones at the end (one line each).
REGISTRATIONS: list[str] = [
    "loyalist.jobs.tasks",  # activation, expiry, reminders, tier re-evaluation (scheduled)
    "loyalist.dashboard.handlers",  # the dashboard rollup consumer
    "loyalist.webhooks.tasks",  # job kind webhooks.deliver
    "loyalist.webhooks.handlers",  # consumer "webhooks"
    "loyalist.actions.builtin",  # award_points, add/remove_tag, send_message, open_task
    "loyalist.journey.tasks",  # journeys (issue 14): job kinds journey.wake, journey.daily
    "loyalist.journey.handlers",  # journeys (issue 14): consumer "journeys"
    "loyalist.coupon.tasks",  # coupons (issue 12): job kind coupon.generate_batch
    "loyalist.coupon.actions",  # coupons (issue 12): action issue_coupon
    "loyalist.integrity.tasks",  # trust: daily ledger checkpoint (chain heads: file + event)
    "loyalist.messaging.tasks",  # channels: job kind messaging.deliver
    "loyalist.messaging.handlers",  # channels: consumer messaging.reminders (points.expiring)
    "loyalist.referral.tasks",  # referrals: qualify job, quarterly leaders (issue 12)
    "loyalist.referral.handlers",  # consumer "referral": joins, orders, returns (issue 12)
    "loyalist.viral.tasks",  # friend-assist expiry, group deadline jobs (issue 12)
    "loyalist.habits.handlers",  # habits: consumer "habits" (counters, badges, boards)
    "loyalist.habits.tasks",  # habits: job kind habits.leaderboards.close (scheduled)
    "loyalist.privacy.tasks",  # trust: retention (erase inactive members' personal data)
    "loyalist.insights.tasks",  # console analytics: job kind insights.compute (issue 10/9)
    "loyalist.merge.tasks",  # identity merge: job kind merge.duplicates (issue 13 item 2)
    "loyalist.recommend.tasks",  # recommendations (issue 14): recommend.compute, {recommendations}
    "loyalist.household.tasks",  # households: expire overdue invitations (hourly)
    "loyalist.fraud.tasks",  # fraud controls (issue 13): daily pruning of velocity counters
    "loyalist.insights.rfm",  # RFM in the programme: nightly job insights.rfm (issue 15/3)
    "loyalist.passes.tasks",  # paid membership: passes.sweep, passes.monthly_coupons
    "loyalist.backtest.tasks",  # backtest in the console (issue 15 item 8): backtest.run
    "loyalist.bulkimport.tasks",  # console bulk import (issue 13 item 5): job kind import.rows
    "loyalist.idempotency.tasks",  # daily pruning: idempotency records, event receipts
]

_configured = False


def configure() -> None:
    """Register every job kind, schedule and consumer (safe to call more than once)."""
    global _configured
    if _configured:
        return
    for module in REGISTRATIONS:
        importlib.import_module(module)
    _configured = True


def pollers() -> list[Callable[[Database], int]]:
    """Tick functions the worker calls every loop; each returns how much work it did.

    Stream engineer: add the event consumers here, e.g.
    ``lambda db: consumers.run_pending(db, limit=500)``.
    """
    configure()
    found: list[Callable[[Database], int]] = []
    # --- pollers: append below this line (one entry per line) ---
    found += _stream_pollers()  # stream positions backstop, consumers, NATS export
    return found


def _stream_pollers() -> list[Callable[[Database], int]]:
    from loyalist.config import get_settings
    from loyalist.events import consumers
    from loyalist.events import service as events

    settings = get_settings()
    out: list[Callable[[Database], int]] = [events.sequence_pending, consumers.run_pending]
    if settings.nats_url:
        from loyalist.events.nats_export import EmbeddedNatsExport

        out.append(
            EmbeddedNatsExport(settings.nats_url, settings.nats_stream, settings.nats_prefix)
        )
    return out
