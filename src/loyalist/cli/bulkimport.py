"""``loyalist import members|orders|points FILE``: bulk import from CSV or Excel (.xlsx)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from loyalist.config import get_settings
from loyalist.errors import LoyalistError
from loyalist.kit.actor import Actor
from loyalist.kit.migrate import migrated

import_app = typer.Typer(
    help="Bulk import of members, orders and carried balances (CSV or .xlsx)",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a .csv or .xlsx file")]
BatchOpt = Annotated[
    int, typer.Option("--batch-rows", min=1, max=100_000, help="rows per transaction")
]
ReportOpt = Annotated[
    Path | None, typer.Option("--errors-csv", help="also write the error report as CSV")
]
CheckOpt = Annotated[bool, typer.Option("--check", help="validate only, write nothing")]
ProcessesOpt = Annotated[
    int,
    typer.Option(
        "--processes",
        min=1,
        max=64,
        help="orders: write in N processes, each the rows of its own accounts",
    ),
]
VersionOpt = Annotated[
    int | None,
    typer.Option(
        "--programme-version",
        min=1,
        help="earn every order under this published programme version"
        " (default: the version in force at each order's date)",
    ),
]


def _under(version: int | None) -> str:
    if version is None:
        return "each order under the programme version in force at its date"
    return f"every order under programme version {version}"


def _import(
    kind: str,
    path: Path,
    batch_rows: int,
    errors_csv: Path | None,
    check: bool,
    processes: int = 1,
    programme_version: int | None = None,
) -> None:
    from loyalist.bulkimport import runner, service
    from loyalist.bulkimport.domain import report_csv

    db = migrated(get_settings().database_url)
    actor = Actor(name="cli:import", scope_path="/", can_write=True, principal="cli:import")
    data = path.read_bytes()
    if programme_version is not None:
        try:  # refused before the file is even read: nothing written
            db.run(
                lambda s: service.check_programme_version(s, kind, programme_version),
                read_only=True,
            )
        except LoyalistError as exc:
            db.dispose()
            err.print(f"[bold red]error[/]: {exc.detail or exc.title} Nothing imported.")
            raise typer.Exit(2) from exc
    try:
        v = runner.check(db, actor, kind, data, path.name)
        if v.errors:
            t = Table(title=f"{path.name}: {len(v.errors)} problem(s), nothing imported")
            for col in ("row", "field", "problem"):
                t.add_column(col)
            for e in v.errors[:200]:
                t.add_row(str(e.row), e.field, e.problem)
            err.print(t)
            if len(v.errors) > 200:
                err.print(f"… and {len(v.errors) - 200} more (see --errors-csv)")
            if errors_csv is not None:
                errors_csv.write_text(report_csv(v.errors), encoding="utf-8")
                err.print(f"error report written to {errors_csv}")
            raise typer.Exit(2)
        if check:
            console.print(f"{path.name}: {v.total} rows valid (nothing written: --check)")
            return
        with Progress(
            TextColumn(f"importing {kind}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as bar:
            task = bar.add_task(kind, total=len(v.rows), rate="-")
            started: list[tuple[float, int]] = []

            def progress(done: int, total: int) -> None:
                import time

                now = time.perf_counter()
                if not started:
                    started.append((now, done))
                t0, d0 = started[0]
                rate = f"{(done - d0) / (now - t0):,.0f}" if now > t0 and done > d0 else "-"
                bar.update(task, completed=done, total=total, rate=rate)

            out = runner.run(
                db,
                actor,
                kind,
                data,
                path.name,
                batch_rows=batch_rows,
                progress=progress,
                validation=v,
                processes=processes,
                programme_version=programme_version,
            )
    except LoyalistError as exc:  # a row changed since the validation: its batch rolled back
        err.print(f"[bold red]error[/]: {exc.detail or exc.title}")
        for fe in exc.errors:
            err.print(f"  - {fe.field}: {fe.message}")
        err.print("rows committed so far stay; run the command again to resume")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    under = f" ({_under(out.programme_version)})" if kind == "orders" else ""
    if out.status == "already_done":
        console.print(
            f"{path.name} was already imported (batch {out.batch_id}{under}): nothing changed"
        )
        return
    rate = out.written_now / out.seconds if out.seconds else 0.0
    console.print(
        f"imported {path.name} (batch {out.batch_id}): {out.created} created, "
        f"{out.unchanged} already there; {out.written_now} rows in {out.seconds:.1f} s "
        f"({rate:,.0f} rows/s)"
    )
    if under:
        console.print(f"points earned: {_under(out.programme_version)}")


@import_app.command("members")
def members(
    file: FileArg,
    batch_rows: BatchOpt = 2000,
    errors_csv: ReportOpt = None,
    check: CheckOpt = False,
) -> None:
    """Members: external_id, phone, email, name, birthday, gender, city, home_store, …"""
    _import("members", file, batch_rows, errors_csv, check)


@import_app.command("orders")
def orders(
    file: FileArg,
    batch_rows: BatchOpt = 2000,
    errors_csv: ReportOpt = None,
    check: CheckOpt = False,
    processes: ProcessesOpt = 1,
    programme_version: VersionOpt = None,
) -> None:
    """Orders: earn points under the programme version in force at each order's date, or
    under the published version given with --programme-version."""
    _import("orders", file, batch_rows, errors_csv, check, processes, programme_version)


@import_app.command("points")
def points(
    file: FileArg,
    batch_rows: BatchOpt = 2000,
    errors_csv: ReportOpt = None,
    check: CheckOpt = False,
) -> None:
    """Carried balances: lots with their original earn date and expiry."""
    _import("points", file, batch_rows, errors_csv, check)
