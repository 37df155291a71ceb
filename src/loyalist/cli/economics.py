"""``loyalist programme backtest``: a proposed programme version re-run over real orders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from loyalist.config import get_settings
from loyalist.errors import LoyalistError
from loyalist.kit.actor import Actor
from loyalist.kit.migrate import migrated

console = Console()
err = Console(stderr=True)


def backtest(
    version_file: Annotated[
        Path, typer.Option("--version-file", help="the proposed programme (YAML or JSON)")
    ],
    months: Annotated[int, typer.Option("--months", min=1, max=120)] = 6,
) -> None:
    """Re-run the last N months of orders under a proposed programme version (read-only)
    and show the points, liability and cost difference against what happened, by tier
    and by store."""
    from loyalist.backtest import service
    from loyalist.programme import service as programmes

    db = migrated(get_settings().database_url)
    actor = Actor(name="cli", scope_path="/", can_write=False, principal="cli")
    try:
        proposed = programmes.load_file(version_file)
        s = db.sessionmaker()
        try:
            r = service.run(s, actor, proposed, months)
        finally:
            s.rollback()  # read-only: nothing is ever kept
            s.close()
    except LoyalistError as exc:
        err.print(f"[red]error[/]: {exc}")
        raise typer.Exit(2) from exc
    finally:
        db.dispose()
    sm = r.summary
    console.print(
        f"backtest of {version_file.name} over {r.months} months "
        f"({r.start.isoformat()} – {r.end.isoformat()}, {r.timezone}): "
        f"{sm.total.orders} member orders, {sm.reproduced} reproduced by the version in force",
        highlight=False,
    )
    for title, groups in (("by tier", sm.by_tier), ("by store", sm.by_store)):
        t = Table(title=title)
        for col in (
            "group",
            "orders",
            "actual points",
            "proposed points",
            "Δ points",
            "Δ liability (fen)",
            "Δ cost (fen)",
        ):
            t.add_column(col, justify="left" if col == "group" else "right")
        for name, line in [*groups.items(), ("total", sm.total)]:
            t.add_row(
                name,
                str(line.orders),
                str(line.actual),
                str(line.proposed),
                f"{line.delta:+d}",
                f"{r.money(line.liability_delta):+d}",
                f"{r.cost(line.delta):+d}",
            )
        console.print(t)
    console.print(
        f"total: Δ points {sm.total.delta:+d}, Δ liability {sm.total.liability_delta:+d} points "
        f"({r.money(sm.total.liability_delta):+d} fen), Δ cost {r.cost(sm.total.delta):+d} fen "
        f"(breakage rate {r.breakage_rate:.4f})",
        highlight=False,
    )
