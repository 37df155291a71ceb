"""``loyalist stream``: the event stream's exporters and consumers."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from loyalist.config import get_settings
from loyalist.events import consumers
from loyalist.events import nats_export as nx
from loyalist.kit.db import Database
from loyalist.kit.migrate import migrated

app = typer.Typer(
    help="The event stream: exporters, consumer lag, parked events", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)


def _db() -> Database:
    return migrated(get_settings().database_url)


def _configure() -> None:
    from loyalist import bootstrap

    bootstrap.configure()


@app.command("nats")
def nats_export(
    url: Annotated[str, typer.Option(help="NATS server")] = nx.DEFAULT_URL,
    stream: Annotated[
        str, typer.Option(help="JetStream stream (created if missing)")
    ] = nx.DEFAULT_STREAM,
    prefix: Annotated[
        str, typer.Option(help="subject prefix: <prefix>.<event type>")
    ] = nx.DEFAULT_PREFIX,
    batch: Annotated[
        int, typer.Option(min=1, max=10_000, help="events per batch")
    ] = nx.DEFAULT_BATCH,
    exit_when_idle: Annotated[
        bool, typer.Option("--exit-when-idle", help="stop once every event is exported")
    ] = False,
) -> None:
    """Publish every event to NATS JetStream (subject <prefix>.<type>, Nats-Msg-Id = event id)."""
    db = _db()
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    exporter = nx.NatsExporter(db, url=url, stream=stream, prefix=prefix, batch=batch)
    try:
        stats = asyncio.run(exporter.run(stop=stopping.is_set, exit_when_idle=exit_when_idle))
    except OSError as exc:
        err.print(f"[bold red]error[/]: cannot reach NATS at {url}: {exc}")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    console.print(
        f"exported to {stream}: {stats.published} published, "
        f"{stats.duplicates} already held, {stats.batches} batches"
    )


@app.command("lag")
def lag() -> None:
    """Every consumer's checkpoint and how far it is behind."""
    _configure()
    db = _db()
    with db.transaction() as s:
        rows = consumers.lag(s)
    table = Table("consumer", "position", "events behind", "seconds behind", "retrying", "parked")
    for r in rows:
        table.add_row(
            r.name,
            str(r.position),
            str(r.events_behind),
            f"{r.seconds_behind:g}",
            str(r.retrying),
            str(r.parked),
        )
    console.print(table)


@app.command("parked")
def parked(consumer: Annotated[str | None, typer.Argument()] = None) -> None:
    """Events a consumer gave up on after its retries, with the last error."""
    db = _db()
    with db.transaction() as s:
        rows = consumers.parked_events(s, consumer)
        table = Table("consumer", "event", "position", "attempts", "last error")
        for f in rows:
            table.add_row(f.consumer, f.event_id, str(f.position), str(f.attempts), f.last_error)
    console.print(table)


@app.command("retry")
def retry(consumer: str, event_id: str) -> None:
    """Run a parked event through its consumer again (after fixing the cause)."""
    _configure()
    db = _db()
    try:
        with db.transaction() as s:
            ok = consumers.retry_parked(s, consumer, event_id)
    except LookupError as exc:
        err.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(2) from exc
    if not ok:
        err.print("failed again; still parked (see `loyalist stream parked`)")
        raise typer.Exit(1)
    console.print(f"{consumer}: {event_id} handled")
