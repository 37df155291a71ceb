"""``loyalist fraud``: backtest a fraud rule over the last days of history, list the
review queue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from loyalist.config import get_settings
from loyalist.kit.actor import Actor
from loyalist.kit.db import Database
from loyalist.kit.migrate import migrated

fraud_app = typer.Typer(help="Fraud controls (风控): backtest, review queue", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
CLI = Actor(name="cli", scope_path="/", can_write=True, principal="cli")  # the operator


def _db() -> Database:
    return migrated(get_settings().database_url)


@fraud_app.command("backtest")
def backtest(
    rule: Annotated[str, typer.Option("--rule", help="a rule code of the fraud document")],
    days: Annotated[int, typer.Option("--days", min=1, max=90, help="history to replay")] = 90,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="a fraud document (YAML) holding a rule not yet published"),
    ] = None,
) -> None:
    """Replay the last DAYS of checked orders and redemptions through one rule: how many it
    would hold or block, beside what shadow mode logged for it on the same traffic."""
    from loyalist.documents import service as documents
    from loyalist.errors import LoyalistError
    from loyalist.fraud import config, service

    db = _db()
    try:
        target: str | config.RuleDoc = rule
        if file is not None:
            doc = documents.load_file(config.KIND, file)
            assert isinstance(doc, config.FraudDocument)
            found = next((r for r in doc.rules if r.code == rule), None)
            if found is None:
                err.print(f"[red]error[/]: no rule {rule!r} in {file}")
                raise typer.Exit(2)
            target = found
        with db.transaction() as s:
            b = service.backtest(s, CLI, target, days=days)
    except LoyalistError as exc:
        err.print(f"[red]error[/]: {exc.detail}")
        raise typer.Exit(2) from exc
    finally:
        db.dispose()
    r = b.result
    t = Table(title=f"backtest of {r.rule} ({r.outcome}) over {days} days")
    for col in ("checked", "hits", "members", "shadow logged", "held live", "mode"):
        t.add_column(col, justify="right")
    t.add_row(
        str(r.checked),
        str(r.hits),
        str(r.members),
        str(b.shadow_hits),
        str(b.live_holds),
        b.mode or "-",
    )
    console.print(t)
    if b.mode == "shadow":
        same = "yes" if b.shadow_hits == r.hits else "NO"
        console.print(f"matches shadow mode: {same}")


@fraud_app.command("reviews")
def reviews(
    status: Annotated[str, typer.Option("--status", help="pending, approved or rejected")] = (
        "pending"
    ),
) -> None:
    """The review queue: points held by fraud rules."""
    from loyalist.errors import LoyalistError
    from loyalist.fraud import service

    db = _db()
    try:
        with db.transaction() as s:
            items = [service.review_out(r) for r in service.reviews(s, CLI, status)]
    except LoyalistError as exc:
        err.print(f"[red]error[/]: {exc.detail}")
        raise typer.Exit(2) from exc
    finally:
        db.dispose()
    t = Table(title=f"fraud reviews ({status})")
    for col in ("id", "member", "order", "points", "rule", "reason", "created"):
        t.add_column(col)
    for i in items:
        t.add_row(
            str(i.id),
            str(i.member_id),
            str(i.order_id),
            str(i.points),
            i.rule,
            i.reason,
            i.created_at.isoformat(),
        )
    console.print(t)
