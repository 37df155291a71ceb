"""The ``loyalist`` command."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from loyalist.analytics.cli import app as analytics_app
from loyalist.analytics.cli import export_app as analytics_export_app
from loyalist.cli.backbone import actions_app, documents_app, tasks_app
from loyalist.cli.bulkimport import import_app
from loyalist.cli.economics import backtest as programme_backtest
from loyalist.cli.fraud import fraud_app  # fraud controls (issue 13)
from loyalist.cli.liability import liability_app
from loyalist.cli.privacy import keys_app, privacy_app
from loyalist.cli.recommend import recommend_app
from loyalist.cli.stream import app as stream_app
from loyalist.config import get_settings
from loyalist.errors import LoyalistError
from loyalist.kit.clock import clock
from loyalist.kit.db import Database
from loyalist.kit.migrate import migrated, upgrade

app = typer.Typer(name="loyalist", help="Loyalist loyalty platform", no_args_is_help=True)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
programme_app = typer.Typer(help="The programme document", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for integrations", no_args_is_help=True)
jobs_app = typer.Typer(help="Periodic jobs", no_args_is_help=True)
ledger_app = typer.Typer(help="The points ledger", no_args_is_help=True)
org_app = typer.Typer(help="The organisation tree", no_args_is_help=True)
user_app = typer.Typer(help="Staff users of the console", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(programme_app, name="programme")
app.add_typer(apikey_app, name="apikey")
app.add_typer(jobs_app, name="jobs")
app.add_typer(ledger_app, name="ledger")
app.add_typer(keys_app, name="keys")  # trust: personal-data keys (issue 13)
app.add_typer(privacy_app, name="privacy")  # trust: a member's data export, erasure
app.add_typer(liability_app, name="liability")  # trust: liability statement, breakage
app.add_typer(fraud_app, name="fraud")  # fraud controls (issue 13): backtest, reviews
app.add_typer(org_app, name="org")
app.add_typer(user_app, name="user")
programme_app.command("backtest")(programme_backtest)  # economics: rule backtest (issue 15)
app.add_typer(import_app, name="import")  # trust: bulk import (issue 13)

console = Console()
err = Console(stderr=True)


def _db(migrate: bool = True) -> Database:
    url = get_settings().database_url
    return migrated(url) if migrate else Database(url)


def _fail(exc: LoyalistError) -> None:
    err.print(f"[bold red]error[/]: {exc.detail or exc.title}")
    for e in exc.errors:
        err.print(f"  - {e.field}: {e.message}")
    raise typer.Exit(2)


def _parse_shift(value: str) -> timedelta:
    m = re.fullmatch(r"([+-]?\d+)([dhm])", value.strip())
    if not m:
        raise typer.BadParameter("use a number and a unit: 8d, 12h, 30m")
    n, unit = int(m.group(1)), m.group(2)
    return {"d": timedelta(days=n), "h": timedelta(hours=n), "m": timedelta(minutes=n)}[unit]


def _set_clock(at: str | None, advance: str | None) -> None:
    if at:
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise typer.BadParameter("--at needs a UTC offset, e.g. 2026-12-01T00:00:00+08:00")
        clock.freeze(when)
    if advance:
        clock.advance(_parse_shift(advance))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest version."""
    upgrade(get_settings().database_url)
    console.print("database is at the latest schema")


@org_app.command("create")
def org_create(
    kind: Annotated[str, typer.Option(help="hq, region or store")],
    code: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    parent: Annotated[str | None, typer.Option(help="parent unit code")] = None,
) -> None:
    """Add an organisation unit (HQ → region → store)."""
    from loyalist.org import service as org

    db = _db()
    try:
        with db.transaction() as s:
            unit = org.create_unit(s, code=code, name=name, kind=kind, parent_code=parent)
            console.print(f"created {unit.kind} {unit.code} ({unit.name})")
    except LoyalistError as exc:
        _fail(exc)


@programme_app.command("apply")
def programme_apply(
    file: Path,
    note: Annotated[str | None, typer.Option(help="why this version")] = None,
) -> None:
    """Validate FILE (YAML or JSON) and make it the next programme version."""
    from loyalist.programme import service as programmes

    try:
        programme = programmes.load_file(file)
        db = _db()
        with db.transaction() as s:
            pv, created = programmes.apply(s, programme, actor="cli", note=note)
            number = pv.version
    except LoyalistError as exc:
        _fail(exc)
        return
    if created:
        console.print(f"programme version {number} is active ({programme.name})")
    else:
        console.print(f"unchanged: version {number} already has this content")


@programme_app.command("show")
def programme_show(
    version: Annotated[int | None, typer.Option(help="a past version")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print the active (or a past) programme."""
    from loyalist.programme import service as programmes

    db = _db()
    try:
        with db.transaction() as s:
            if version is None:
                number, p = programmes.active(s)
            else:
                number, p = version, programmes.get_version(s, version)
    except LoyalistError as exc:
        _fail(exc)
        return
    doc = programmes.as_document(p)
    if as_json:
        print(json.dumps({"version": number, "document": doc}, ensure_ascii=False, indent=2))
        return
    console.print(f"[bold]{p.name}[/] — version {number}, {p.currency}, {p.timezone}")
    t = Table("tier", "name", f"threshold ({p.tiers.metric.value})", "multiplier", "discount")
    for lvl in p.tiers.levels:
        t.add_row(
            lvl.code,
            lvl.name,
            str(lvl.threshold),
            f"{lvl.benefits.points_multiplier}×",
            f"{lvl.benefits.discount_rate}",
        )
    console.print(t)
    e = p.earning
    console.print(
        f"earning: {e.base.points_per_unit} point(s) per {e.base.unit_minor} minor units; "
        f"rounding {p.points.rounding.value}; pending {p.points.pending_days} day(s); "
        f"expiry {p.points.expiry.kind.value} "
        f"{p.points.expiry.months or p.points.expiry.years or ''}; "
        f"negative balance: {p.points.negative_balance.value}"
    )
    r = Table("rule", "kind", "multiplier", "match")
    for rule in e.rules:
        r.add_row(rule.code, rule.kind.value, str(rule.multiplier or ""), _match(rule.match))
    for c in e.campaigns:
        r.add_row(c.code, "campaign", f"{c.multiplier} +{c.bonus_points}", _campaign_when(c))
    console.print(r)
    rw = Table("reward", "name", "points", "cash", "stock", "limit", "min tier")
    for x in p.rewards:
        rw.add_row(
            x.code,
            x.name,
            str(x.points),
            str(x.cash_minor),
            "∞" if x.stock is None else str(x.stock),
            str(x.per_member_limit or ""),
            x.min_tier or "",
        )
    console.print(rw)


def _match(m: Any) -> str:
    parts = [f"{k}={','.join(v)}" for k, v in m.model_dump().items() if v]
    return " ".join(parts) or "any"


def _campaign_when(c: Any) -> str:
    bits = []
    if c.weekdays:
        bits.append("weekdays " + ",".join(map(str, c.weekdays)))
    if c.date_from or c.date_to:
        bits.append(f"{c.date_from or '…'} → {c.date_to or '…'}")
    return " ".join(bits) + " " + _match(c.match)


@programme_app.command("dry-run")
def programme_dry_run(
    order_file: Annotated[Path, typer.Argument(help="a JSON order as POST /v1/orders takes")],
    tier: Annotated[str | None, typer.Option()] = None,
    programme_file: Annotated[
        Path | None, typer.Option("--programme", help="a draft programme to try instead")
    ] = None,
    member: Annotated[
        str | None,
        typer.Option(help='sample member fields as JSON, e.g. \'{"tags": ["vip"]}\''),
    ] = None,
) -> None:
    """Show which rules would give what for a sample order, and why; writes nothing."""
    from loyalist.order import service as orders
    from loyalist.order.schemas import DryRunIn
    from loyalist.programme import service as programmes

    try:
        data = DryRunIn.model_validate(
            {
                "order": json.loads(order_file.read_text()),
                "tier": tier,
                "member": json.loads(member) if member else {},
            }
        )
        if programme_file is not None:
            res = orders.dry_run_with(programmes.load_file(programme_file), data)
        else:
            db = _db()
            with db.transaction() as s:
                _v, res = orders.dry_run(s, _system(), data)
    except LoyalistError as exc:
        _fail(exc)
        return
    t = Table("rule", "points", "lines", "why")
    for b in res.breakdown:
        t.add_row(b.rule, str(b.points), ",".join(map(str, b.lines)), b.description)
    console.print(t)
    for outcome in res.conditions:
        verdict = "[green]applies[/]" if outcome.passed else "[red]does not apply[/]"
        console.print(f"{outcome.rule} ({outcome.name}) when: {verdict}", highlight=False)
        for depth, node in outcome.explanation.walk(1):
            mark = "✓" if node.passed else "✗"
            console.print(f"{'  ' * depth}{mark} {node.text()}", highlight=False, markup=False)
    console.print(f"[bold]total: {res.points} points[/]")


def _system() -> Any:
    from loyalist.kit.actor import SYSTEM

    return SYSTEM


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option()],
    scope: Annotated[str, typer.Option(help="hq, or a region/store code")] = "hq",
    read_only: Annotated[bool, typer.Option("--read-only")] = False,
    approval_free_limit: Annotated[
        int | None,
        typer.Option(
            help="points the key may adjust at once without a second person "
            "(default: the approval threshold applies)",
            min=0,
        ),
    ] = None,
) -> None:
    """Create an API key. The key is printed once, as the last line."""
    from loyalist.access import service as access

    db = _db()
    try:
        with db.transaction() as s:
            issued = access.create_key(
                s,
                name=name,
                scope=scope,
                access="read" if read_only else "read_write",
                approval_free_limit=approval_free_limit,
            )
            secret = issued.secret
            prefix = issued.key.prefix
    except LoyalistError as exc:
        _fail(exc)
        return
    console.print(
        f"API key {prefix} for {name!r}, scope {scope}, "
        f"{'read-only' if read_only else 'read-write'}. Store it now: it is not shown again."
    )
    print(secret)


@apikey_app.command("list")
def apikey_list() -> None:
    from loyalist.access import service as access

    db = _db()
    t = Table("prefix", "name", "unit", "access", "revoked")
    with db.transaction() as s:
        for k in access.list_keys(s):
            t.add_row(k.prefix, k.name, str(k.org_unit_id), k.access, str(k.revoked_at or ""))
    console.print(t)


@apikey_app.command("revoke")
def apikey_revoke(prefix: str) -> None:
    from loyalist.access import service as access

    db = _db()
    try:
        with db.transaction() as s:
            access.revoke(s, prefix)
    except LoyalistError as exc:
        _fail(exc)
    console.print(f"revoked {prefix}")


@user_app.command("create")
def user_create(
    login: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help="hq_admin, regional_manager, store_staff, ...")],
    unit: Annotated[str, typer.Option(help="org unit code (hq, a region or a store)")],
    password: Annotated[str | None, typer.Option(help="prompted when omitted")] = None,
) -> None:
    """Create a console user (e.g. the first HQ admin)."""
    from loyalist.staff import service as staff

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    db = _db()
    try:
        with db.transaction() as s:
            user = staff.create_user(s, login=login, role=role, unit_code=unit, password=password)
            console.print(f"created {user.login} ({user.role}) at {unit}")
    except LoyalistError as exc:
        _fail(exc)


@jobs_app.command("run")
def jobs_run(
    only: Annotated[str | None, typer.Option(help="activate, expire, remind or tiers")] = None,
    at: Annotated[
        str | None, typer.Option(help="run as of this time (ISO 8601 with offset)")
    ] = None,
    advance: Annotated[str | None, typer.Option(help="move the clock forward, e.g. 8d")] = None,
) -> None:
    """Enqueue the periodic sweeps (activation, expiry, reminders, tiers) and the due
    schedules, then run the job queue until nothing is due."""
    from loyalist import bootstrap
    from loyalist.jobs import queue, scheduler, tasks

    _set_clock(at, advance)
    if only is not None and only not in tasks.SWEEPS:
        raise typer.BadParameter(f"one of {', '.join(tasks.SWEEPS)}")
    bootstrap.configure()
    db = _db()
    now = clock.now()
    names = [only] if only else list(tasks.SWEEPS)
    stamp = now.isoformat(timespec="seconds")

    def enqueue_sweeps(s: Any) -> None:
        for name in names:  # in dependency order: activation before expiry before reminders
            kind = tasks.SWEEPS[name]
            queue.enqueue(s, kind, {"manual": stamp}, run_at=now, dedupe_key=f"run:{kind}:{stamp}")

    db.run(enqueue_sweeps)
    if only is None:
        scheduler.enqueue_due(db)
    with console.status("running due jobs…"):
        worker = f"cli:{os.getpid()}"
        ran = queue.run_until_empty(db, worker)
    with db.transaction() as s:
        waiting = queue.list_jobs(s, states=["failed", "dead"], limit=1000)
        failed = [j for j in waiting if j.updated_at >= now]
    console.print(f"as of {now.isoformat()}: {ran} job(s) run")
    if failed:
        t = Table("id", "kind", "attempts", "next try", "last error")
        for job in failed:
            t.add_row(str(job.id), job.kind, str(job.attempts), _when(job.run_at), job.last_error)
        err.print(t)
        err.print(f"[bold red]{len(failed)} job(s) failed (retried later, or dead)[/]")
        raise typer.Exit(1)


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


JOB_STATES = ["queued", "running", "done", "failed", "dead", "cancelled"]


@jobs_app.command("list")
def jobs_list(
    state: Annotated[
        list[str] | None, typer.Option(help="queued, running, done, failed, dead, cancelled")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="only jobs of this kind")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The latest jobs with their state, attempts and last error."""
    from loyalist.jobs import queue

    for st in state or []:
        if st not in JOB_STATES:
            raise typer.BadParameter(f"state must be one of {', '.join(JOB_STATES)}")
    db = _db()
    with db.transaction() as s:
        found = queue.list_jobs(s, states=state, kind=kind, limit=limit)
        totals = queue.counts(s)
    t = Table("id", "kind", "state", "attempts", "run at", "finished", "worker", "last error")
    colours = {"dead": "red", "failed": "red", "running": "yellow", "done": "green"}
    for job in found:
        colour = colours.get(job.state, "white")
        t.add_row(
            str(job.id),
            job.kind,
            f"[{colour}]{job.state}[/]",
            f"{job.attempts}/{job.max_attempts}",
            _when(job.run_at),
            _when(job.finished_at),
            job.locked_by or "",
            (job.last_error or "")[:120],
        )
    console.print(t)
    console.print(", ".join(f"{k}: {totals[k]}" for k in JOB_STATES if k in totals) or "no jobs")


@jobs_app.command("retry")
def jobs_retry(job_ids: Annotated[list[int], typer.Argument(help="job ids")]) -> None:
    """Queue dead, failed or cancelled jobs again now (with a fresh count of attempts)."""
    from loyalist.jobs import operators

    _report_changed("queued again", job_ids, _each_job(operators.retry, job_ids))


@jobs_app.command("cancel")
def jobs_cancel(job_ids: Annotated[list[int], typer.Argument(help="job ids")]) -> None:
    """Cancel jobs that are queued, failed or dead (a running job finishes first)."""
    from loyalist.jobs import operators

    _report_changed("cancelled", job_ids, _each_job(operators.cancel, job_ids))


CLI_ACTOR_NAME = "cli"


def _each_job(action: Any, job_ids: list[int]) -> list[int]:
    """Apply an operator action to each job in its own transaction (audited as "cli")."""
    from loyalist.kit.actor import Actor

    actor = Actor(name=CLI_ACTOR_NAME, principal=CLI_ACTOR_NAME)
    db = _db()
    changed = []
    for job_id in job_ids:
        try:
            db.run(functools.partial(action, actor=actor, job_id=job_id), actor=actor)
        except LoyalistError as exc:
            err.print(f"job {job_id}: {exc.detail or exc.title}")
            continue
        changed.append(job_id)
    return changed


def _report_changed(what: str, asked: list[int], changed: list[int]) -> None:
    if changed:
        console.print(f"{what}: {', '.join(map(str, changed))}")
    missed = [i for i in asked if i not in changed]
    if missed:
        err.print(f"[bold red]unchanged[/] (no such job, or not in a state for this): {missed}")
        raise typer.Exit(1)


def _start_worker(db: Database, *, concurrency: int, poll: float, lease: float) -> Any:
    from loyalist import bootstrap
    from loyalist.jobs.worker import Worker

    bootstrap.configure()
    return Worker(
        db, bootstrap.pollers(), concurrency=concurrency, poll_interval=poll, lease_s=lease
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=64, help="jobs run at once (threads)")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="stop when nothing is due")] = False,
    poll_interval: Annotated[
        float | None, typer.Option(min=0.01, help="seconds between looks when idle")
    ] = None,
    lease: Annotated[
        float | None, typer.Option(min=1, help="seconds a claimed job stays leased")
    ] = None,
    imports: Annotated[
        list[str] | None, typer.Option("--import", hidden=True, help="extra job modules")
    ] = None,
) -> None:
    """Run jobs, schedules and event consumers until SIGTERM (or, with --once, until idle)."""
    import importlib
    import signal

    settings = get_settings()
    for module in imports or []:
        importlib.import_module(module)  # e.g. test job kinds; never production
    db = _db()
    w = _start_worker(
        db,
        concurrency=concurrency or settings.worker_concurrency,
        poll=poll_interval or settings.worker_poll_interval_s,
        lease=lease or settings.worker_lease_s,
    )

    def _stop(_sig: int, _frame: Any) -> None:
        w.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console.print(f"worker {w.name} on {settings.database_url.split('@')[-1]}")
    stats = w.run(once=once)
    console.print(
        f"worker stopped: {stats.done} done, {stats.retried} to retry, {stats.dead} dead, "
        f"{stats.lost} lost to another worker"
    )
    db.dispose()


@ledger_app.command("verify")
def ledger_verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="a chain-head checkpoint file (loyalist ledger checkpoint) to compare with",
        ),
    ] = None,
) -> None:
    """Prove the balance cache equals the entries and the open lots for every account,
    and that every account's hash chain is intact (no entry edited, deleted or inserted)."""
    from loyalist.integrity import service as integrity
    from loyalist.ledger import service as ledger

    db = _db()
    with console.status("verifying the ledger…"), db.transaction() as s:
        checked, problems = ledger.verify(s)
        if checkpoint is not None:
            try:
                heads = integrity.read_checkpoint(checkpoint)
            except (OSError, ValueError) as exc:
                err.print(f"[red]checkpoint {checkpoint}[/]: {exc}")
                raise typer.Exit(2) from exc
            problems += ledger.verify_heads(s, heads)
    if problems:
        for p in problems:
            where = f"account {p.account_id}" if p.account_id else "members"
            err.print(f"[red]{where}[/]: {p.problem}", soft_wrap=True)
        err.print(f"[bold red]{len(problems)} disagreement(s) in {checked} account(s)[/]")
        raise typer.Exit(1)
    against = f", matches checkpoint {checkpoint.name}" if checkpoint else ""
    console.print(
        f"[green]ledger verified[/]: {checked} account(s), cache = entries = lots, "
        f"hash chains intact{against}",
        soft_wrap=True,
    )


@ledger_app.command("checkpoint")
def ledger_checkpoint(
    out: Annotated[
        Path | None, typer.Option("--out", help="directory (default: ledger_checkpoint_dir)")
    ] = None,
) -> None:
    """Export every account's hash-chain head now (file + ledger.checkpoint event)."""
    from loyalist.integrity import service as integrity
    from loyalist.integrity.tasks import checkpoint_dir

    db = _db()
    now = clock.now()
    with db.transaction() as s:
        from loyalist.programme import service as programmes

        tz = programmes.active(s)[1].tz
        cp = integrity.take(s, now, now.astimezone(tz).date().isoformat(), out or checkpoint_dir())
    console.print(
        f"checkpoint {cp.path}: {cp.accounts} account(s), {cp.entries} entries, digest {cp.digest}",
        soft_wrap=True,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[int | None, typer.Option()] = None,
    run_worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            "--scheduler/--no-scheduler",
            help="run the job worker (jobs, schedules, consumers) in this process",
        ),
    ] = True,
) -> None:
    """Serve the API (and, unless --no-worker, an embedded job worker)."""
    import uvicorn

    from loyalist import serve

    settings = get_settings()
    if not (run_worker and settings.run_scheduler):
        # speed (issue 11): no worker to run here, so hand over to the lean server module
        # (neither it nor its uvicorn workers import the CLI).
        console.print(
            f"Loyalist on http://{host or settings.host}:{port or settings.port} "
            f"(API docs: /docs) — database {settings.database_url.split('@')[-1]}"
            " — no job worker"
        )
        sys.stdout.flush()
        bind = [host or settings.host, str(port or settings.port)]
        os.execv(  # noqa: S606 (our own interpreter and module, no shell)
            sys.executable,
            [
                sys.executable,
                "-m",
                "loyalist.serve",
                *bind,
                str(workers or settings.workers),
                settings.log_level,  # so the supervisor need not import the settings
            ],
        )
    db = _db()
    embedded = None
    if run_worker and settings.run_scheduler:
        embedded = _start_worker(
            db,
            concurrency=settings.worker_concurrency,
            poll=settings.worker_poll_interval_s,
            lease=settings.worker_lease_s,
        )
        embedded.start_thread()
    console.print(
        f"Loyalist on http://{host or settings.host}:{port or settings.port} "
        f"(API docs: /docs) — database {settings.database_url.split('@')[-1]}"
        + ("" if embedded else " — no job worker")
    )
    try:
        uvicorn.run(
            serve.FACTORY,
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers or settings.workers,
            log_level=settings.log_level,
            access_log=False,
            timeout_keep_alive=serve.KEEP_ALIVE_S,
            # Workers import the whole app before they answer the supervisor's health
            # check; on a busy 2-core machine that takes longer than uvicorn's default 5 s.
            timeout_worker_healthcheck=30,
        )
    finally:
        if embedded is not None:
            embedded.stop()  # uvicorn returned on SIGTERM/SIGINT: finish the jobs in hand


@app.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = False,
    members: Annotated[int, typer.Option(help="how many members")] = 1000,
    months: Annotated[int, typer.Option(help="months of order history")] = 12,
    seed: Annotated[int, typer.Option()] = 7,
    reset: Annotated[bool, typer.Option(help="rebuild even if demo data exists")] = False,
) -> None:
    """Build a realistic demo programme and data through the services, then serve."""
    from loyalist.demo import build

    if serve_after:
        # The demo server keeps member sign-in codes in the development inbox (/m/dev/inbox).
        os.environ.setdefault("LOYALIST_DEV_INBOX", "true")
        get_settings.cache_clear()
    db = _db()
    try:
        build.run(db, members=members, months=months, seed=seed, reset=reset, console=console)
    except LoyalistError as exc:
        _fail(exc)
    if serve_after:
        serve(host=None, port=None, workers=None, run_worker=True)


@app.command()
def bench(name: Annotated[str, typer.Argument(help="earn, clv or all")] = "all") -> None:
    """Run the benchmarks in benchmarks/ (from a source checkout)."""
    root = Path.cwd() / "benchmarks"
    scripts = {"earn": "bench_earn.py", "clv": "bench_clv.py"}
    chosen = list(scripts.values()) if name == "all" else [scripts[name]]
    for script in chosen:
        path = root / script
        if not path.exists():
            err.print(f"{path} not found: run from a source checkout")
            raise typer.Exit(2)
        started = time.monotonic()
        rc = subprocess.call([sys.executable, str(path)])  # noqa: S603 - our own script
        console.print(f"{script}: exit {rc} in {time.monotonic() - started:.0f}s")
        if rc:
            raise typer.Exit(rc)


app.add_typer(analytics_app, name="analyze")
app.add_typer(analytics_export_app, name="export")  # Parquet for the Spark engine (issue 15)
app.add_typer(documents_app, name="documents")
app.add_typer(actions_app, name="actions")
app.add_typer(tasks_app, name="tasks")
app.add_typer(stream_app, name="stream")

points_app = typer.Typer(help="Manual points adjustments (four eyes)", no_args_is_help=True)
approvals_app = typer.Typer(help="Adjustments waiting for a second person", no_args_is_help=True)
app.add_typer(points_app, name="points")
app.add_typer(approvals_app, name="approvals")
app.add_typer(recommend_app, name="recommend")  # recommendations (issue 14)


def _operator(by: str) -> Any:
    """The person at the shell, by the name they give: the CLI is one channel among others
    and meets the same approval rule (a request is never approved by its requester)."""
    from loyalist.kit.actor import Actor

    who = by.strip()
    if not who:
        err.print("[bold red]error[/]: --by names the person acting")
        raise typer.Exit(2)
    return Actor(name=f"cli:{who}", scope_path="/", can_write=True, principal=f"cli:{who}"[:64])


@points_app.command("adjust")
def points_adjust(
    member_id: int,
    points: Annotated[int, typer.Argument(help="positive credits, negative debits")],
    reason: Annotated[str, typer.Option()],
    by: Annotated[str, typer.Option(help="who is adjusting")],
) -> None:
    """Adjust a member's points; above the approval threshold it waits for a second person."""
    from loyalist.approval import service as approvals

    db = _db()
    try:
        with db.transaction() as s:
            out = approvals.adjust(
                s, _operator(by), member_id, points, reason, rules=approvals.policy(get_settings())
            )
            applied = out.entry.id if out.entry is not None else None
            pending = out.request.id if out.request is not None else None
    except LoyalistError as exc:
        _fail(exc)
        return
    if applied is not None:
        console.print(f"applied: ledger entry {applied}")
    else:
        console.print(f"pending approval: request {pending}")


@approvals_app.command("list")
def approvals_list() -> None:
    """Pending adjustment requests."""
    from loyalist.approval import service as approvals
    from loyalist.kit.actor import SYSTEM

    db = _db()
    t = Table("id", "member", "points", "reason", "requested by", "cause")
    with db.transaction() as s:
        for r in approvals.pending(s, SYSTEM):
            t.add_row(str(r.id), str(r.member_id), str(r.points), r.reason, r.requested_by, r.cause)
    console.print(t)


@approvals_app.command("decide")
def approvals_decide(
    request_id: int,
    decision: Annotated[str, typer.Argument(help="approve or reject")],
    by: Annotated[str, typer.Option(help="who decides (not the requester)")],
) -> None:
    """Approve or reject an adjustment request."""
    from loyalist.approval import service as approvals

    if decision not in ("approve", "reject"):
        err.print("[bold red]error[/]: decision is approve or reject")
        raise typer.Exit(2)
    fn = approvals.approve if decision == "approve" else approvals.reject
    db = _db()
    try:
        with db.transaction() as s:
            req = fn(s, _operator(by), request_id)
            status = req.status
    except LoyalistError as exc:
        _fail(exc)
        return
    console.print(f"request {request_id}: {status}")


if __name__ == "__main__":
    app()


# ── dynamic reward pricing (issue 15, item 5) ──────────────────────────────────────────
rewards_app = typer.Typer(help="The rewards catalogue", no_args_is_help=True)
app.add_typer(rewards_app, name="rewards")


@rewards_app.command("prices")
def rewards_prices(
    on: Annotated[
        str, typer.Option("--date", help="today, tomorrow or YYYY-MM-DD (programme-local)")
    ] = "tomorrow",
) -> None:
    """Dry run: each reward's points price at the start of a day (stock and demand as they
    are now; rules on the member are not applied). Writes nothing."""
    from datetime import date as _date

    from loyalist.programme import service as programmes
    from loyalist.reward import service as rewards

    db = _db()
    try:
        with db.transaction() as s:
            today = clock.now().astimezone(programmes.active(s)[1].tz).date()
            if on in ("today", "tomorrow"):
                day = today + timedelta(days=1 if on == "tomorrow" else 0)
            else:
                try:
                    day = _date.fromisoformat(on)
                except ValueError:
                    raise typer.BadParameter("use today, tomorrow or YYYY-MM-DD") from None
            priced = [rewards.price_out(r, p) for r, p in rewards.prices_on(s, day)]
    except LoyalistError as exc:
        _fail(exc)
        return
    finally:
        db.dispose()
    t = Table(title=f"reward prices on {day.isoformat()}")
    for col in ("reward", "base", "price", "ratio", "why"):
        t.add_column(col, justify="right" if col in ("base", "price", "ratio") else "left")
    for p in priced:
        t.add_row(p.reward, str(p.base_points), str(p.points), p.ratio, p.reason)
    console.print(t)
