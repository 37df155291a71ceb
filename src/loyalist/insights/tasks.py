"""The ``insights.compute`` job: one step of an analytics run.

Each step reads the scope's orders, computes its part with ``loyalist.analytics`` (through
``insights.compute``), stores it in ``analytics_run.result``, moves the run's ``step`` on
and queues the next step, all in the job's transaction: progress is visible as each step
commits, and a repeated or stale job (its step already done) does nothing. An input the
analytics refuse (no orders, say) fails the run with its message instead of retrying.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from loyalist.insights import economics, service
from loyalist.jobs import queue
from loyalist.jobs.registry import JobContext, job_kind
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database
from loyalist.kit.localtime import start_of_local_day
from loyalist.models import AnalyticsRun
from loyalist.programme import service as programmes
from loyalist.recommend import service as recommend  # recommendations (issue 14)


@job_kind(service.JOB_KIND, max_attempts=3)
def compute_step(ctx: JobContext) -> None:
    # Imported here: SciPy and Polars load only in the process that computes.
    from loyalist.insights import compute

    s = ctx.session
    run_id, step = int(ctx.payload["run"]), int(ctx.payload["step"])
    run = s.get(AnalyticsRun, run_id, with_for_update=True)
    if run is None or run.step != step or run.status in (service.DONE, service.FAILED):
        return
    run.status = service.RUNNING
    _v, programme = programmes.active(s)
    name = service.STEPS[step]
    try:
        tx = compute.until(
            compute.read_orders(s.connection(), run.org_path, programme.timezone), run.as_of
        )
        part: dict[str, Any]
        if name == "segments":
            part = compute.segments(tx, run.as_of)
            part["segment_names_zh"] = compute.segment_names()
            part["orders"] = tx.frame.height
        elif name == "movement":
            part = {"movement": compute.movement(tx, run.compare_from, run.as_of)}
        elif name == "cohorts":
            part = compute.cohorts(tx)
        elif name == "economics":  # econ: cost, rates, holdout incrementality, ROI
            pts = economics.points(
                s,
                run.org_path,
                programme.tz,
                run.as_of,
                programme.points.value_minor_per_100_points,
            )
            part = {"economics": compute.economics(tx, pts, economics.holdout(s, run.org_path))}
            held = economics.pass_holders(s, run.org_path, programme.tz, run.as_of)
            part["economics"]["passes"] = compute.pass_economics(tx, pts, held)  # pass ROI
        else:
            part = compute.clv(tx, run.as_of)
            part["recommendations"] = _recommendations(s, run)  # issue 14 item 6
    except compute.AnalyticsError as exc:
        run.status = service.FAILED
        run.error = str(exc)[:2000]
        run.finished_at = utcnow()
        return
    run.result = {**run.result, **part}  # a new dict: the JSON column sees the change
    run.step = step + 1
    if run.step == len(service.STEPS):
        run.status = service.DONE
        run.finished_at = utcnow()
    else:
        queue.enqueue(
            s,
            service.JOB_KIND,
            {"run": run.id, "step": run.step},
            dedupe_key=f"insights:{run.id}:{run.step}",
        )


def _recommendations(s: Session, run: AnalyticsRun) -> dict[str, Any]:
    """The offline evaluation of recommendations (ALS against popularity, NDCG@10 …) on
    the scope's history up to the run's day: the report's recommendations section."""
    _v, programme = programmes.active(s)
    end = start_of_local_day(programme.tz, run.as_of + dt.timedelta(days=1))
    return recommend.evaluate(s, org_path=run.org_path, before=end).as_dict()


def compute_now(db: Database, run_id: int) -> None:
    """Run a run's remaining steps inline, each in its own transaction, as the worker would
    (for ``loyalist demo``, which shows a computed run without waiting for a worker). The
    step jobs it queued find their steps done and do nothing."""
    for step in range(len(service.STEPS)):

        def one(s: Session, step: int = step) -> None:
            compute_step(
                JobContext(
                    session=s,
                    job_id=0,
                    kind=service.JOB_KIND,
                    payload={"run": run_id, "step": step},
                    attempt=1,
                    now=utcnow(),
                )
            )

        db.run(one)
