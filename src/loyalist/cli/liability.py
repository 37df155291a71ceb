"""``loyalist liability``: outstanding points, their value, breakage, the monthly statement."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from loyalist.config import get_settings
from loyalist.kit.actor import Actor
from loyalist.kit.clock import clock
from loyalist.kit.migrate import migrated

liability_app = typer.Typer(help="The programme's points liability", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


@liability_app.command("report")
def report(
    month: Annotated[
        str | None, typer.Option("--month", help="YYYY-MM (default: this month)")
    ] = None,
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help="also write an Excel file")] = None,
) -> None:
    """The monthly statement (reconciled with the ledger), outstanding points by expiry
    month, region and store with their money value, and the expected breakage."""
    import re

    from loyalist.liability import service
    from loyalist.programme import service as programmes

    if month is not None and not re.match(MONTH, month):
        err.print(f"[red]error[/]: --month {month!r}: expected YYYY-MM")
        raise typer.Exit(2)
    db = migrated(get_settings().database_url)
    actor = Actor(name="cli", scope_path="/", can_write=False, principal="cli")
    try:
        with db.transaction() as s:
            tz = programmes.active(s)[1].tz
            r = service.report(s, actor, month or clock.now().astimezone(tz).strftime("%Y-%m"))
    finally:
        db.dispose()
    st = r.statement
    per = st.value_minor_per_100_points
    t = Table(title=f"liability statement {st.month} ({r.timezone})")
    t.add_column("line")
    t.add_column("points", justify="right")
    t.add_column("value (fen)", justify="right")
    for label, pts in (
        ("opening", st.opening),
        ("earned", st.earned),
        ("redeemed", st.redeemed),
        ("expired", st.expired),
        ("adjusted", st.adjusted),
        ("closing", st.closing),
    ):
        t.add_row(label, str(pts), str(service.money(pts, per)))
    console.print(t)
    console.print(
        f"reconciles with the ledger: {'yes' if st.reconciles else 'NO'} "
        f"(ledger closing {st.ledger_closing})"
    )
    o = Table(title="outstanding points")
    for col in ("expiry month", "region", "store", "points", "value (fen)"):
        o.add_column(col)
    for row in r.outstanding:
        o.add_row(row.expiry_month, row.region, row.store, str(row.points), str(row.value_minor))
    console.print(o)
    console.print(
        f"outstanding {r.outstanding_points} points, debt {r.debt}; breakage rate "
        f"{r.breakage_rate:.4f} → expected breakage {r.expected_breakage} points"
    )
    if r.forecast is not None:  # econ: the next 12 months by earning cohort (issue 15)
        f = Table(title="forecast: next 12 months (cohort breakage)")
        for col in ("month", "redeemed", "expiring", "liability", "value (fen)"):
            f.add_column(col, justify="left" if col == "month" else "right")
        for fm in r.forecast.months:
            f.add_row(
                fm.month,
                str(fm.redeemed),
                str(fm.expiring),
                str(fm.liability),
                str(service.money(fm.liability, per)),
            )
        console.print(f)
    if xlsx is not None:
        xlsx.write_bytes(service.to_xlsx(r))
        console.print(f"written {xlsx}")
    if not st.reconciles:
        raise typer.Exit(1)
