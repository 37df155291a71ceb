"""``loyalist recommend``: compute the stored lists now; evaluate ALS against popularity."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from loyalist.config import get_settings
from loyalist.kit.migrate import migrated

recommend_app = typer.Typer(help="Recommendations (issue 14)", no_args_is_help=True)
console = Console()


@recommend_app.command("compute")
def compute() -> None:
    """Run the nightly job now: rewrite every member's list and the popularity lists."""
    from loyalist.recommend import service

    db = migrated(get_settings().database_url)
    try:
        with db.transaction() as s:
            done = service.compute(s)
    finally:
        db.dispose()
    console.print(f"{done.members} members, {done.scopes} popularity scopes, {done.rows} rows")


@recommend_app.command("evaluate")
def evaluate(
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="list length")] = 10,
    test_days: Annotated[
        int, typer.Option("--test-days", min=1, help="the last N days are the test period")
    ] = 60,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Offline evaluation on a time split: precision@k, recall@k, NDCG@k and coverage of
    ALS against the popularity baseline."""
    from loyalist.recommend import service

    db = migrated(get_settings().database_url)
    try:
        with db.transaction() as s:
            e = service.evaluate(s, k=k, test_days=test_days)
    finally:
        db.dispose()
    out = e.as_dict()
    if as_json:
        print(json.dumps(out, ensure_ascii=False))
        return
    t = Table(
        title=f"time split at {e.split_at:%Y-%m-%d}: {e.train_interactions} training purchases, "
        f"{e.test_members} test members, {e.items} items"
    )
    t.add_column("model")
    for name in (f"precision@{k}", f"recall@{k}", f"ndcg@{k}", "coverage"):
        t.add_column(name, justify="right")
    for label, key in (("ALS", "als"), ("popularity", "popularity")):
        row = out[key]
        assert isinstance(row, dict)
        t.add_row(label, *(f"{v:.4f}" for v in row.values()))
    console.print(t)
