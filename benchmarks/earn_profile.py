"""Statements and server CPU per recorded order, in process, through the real app.

Builds the bench data (org, demo programme, members) in ``loyalist_speed_prof`` (or the
database named by ``--url``), then posts ``--orders`` orders of the benchmark's basket mix
through the ASGI app (Starlette's TestClient: no sockets), counting every SQL statement
with a SQLAlchemy ``before_cursor_execute`` listener and the process's CPU time with
``time.process_time``. Prints statements per order (by kind) and CPU ms per order; with
``--show`` the statements of one order; with ``--pyinstrument FILE`` a profile.

With ``--fraud`` (issue 13) a fraud document with five live rules is published first and
every order carries a device id (one of 50): the difference against a run without it is
what a fraud decision adds per order (counter upserts, the check row, the document read).

Usage: .venv/bin/python benchmarks/earn_profile.py [--orders 300] [--show] [--fraud]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_earn  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/loyalist_speed_prof"


class Counter:
    def __init__(self) -> None:
        self.on = False
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if self.on:
            self.statements.append(statement)


def kind(stmt: str) -> str:
    word = stmt.lstrip().split(None, 1)[0].upper()
    return word


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--url", default=DEFAULT_URL)
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--orders", type=int, default=300)
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--pyinstrument", metavar="FILE")
    ap.add_argument("--reuse-data", action="store_true")
    ap.add_argument("--fraud", action="store_true", help="publish fraud rules, send device ids")
    args = ap.parse_args()

    from sqlalchemy import event
    from starlette.testclient import TestClient

    from loyalist.app import create_app
    from loyalist.config import Settings
    from loyalist.kit.db import Database

    dbname = args.url.rsplit("/", 1)[-1]
    if args.reuse_data:
        key = _key(args.url)
    else:
        bench_earn.recreate_database(dbname)
        key = bench_earn.build_data(args.members, 42, args.url)
    members = [int(x) for x in bench_earn.psql("SELECT id FROM member", dbname).split()]
    db = Database(args.url)
    counter = Counter()
    event.listen(db.engine, "before_cursor_execute", counter)
    settings = Settings(database_url=args.url, run_scheduler=False)
    app = create_app(settings, db)
    basket = bench_earn.Basket(random.Random(7), members)
    if args.fraud:
        _publish_fraud_rules(db)
    run = uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with TestClient(app) as client:

        def post(i: int) -> None:
            body = basket.order(f"prof-{run}-{i}")
            if args.fraud:  # one of 50 devices
                body = body[:-1] + f', "device_id": "dev-{i % 50}"}}'.encode()
            r = client.post(
                "/v1/orders",
                content=body,
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert r.status_code == 201, r.text

        for i in range(30):  # warm-up: caches, compiled statements
            post(i)
        counter.on = True
        counter.statements.clear()
        post(30)
        one = list(counter.statements)
        counter.statements.clear()
        prof = None
        if args.pyinstrument:
            from pyinstrument import Profiler

            prof = Profiler(interval=0.0005)
            prof.start()
        c0, w0 = time.process_time(), time.perf_counter()
        for i in range(args.orders):
            post(100 + i)
        c1, w1 = time.process_time(), time.perf_counter()
        if prof is not None:
            prof.stop()
            out = Path(args.pyinstrument)
            if out.suffix == ".txt":  # a text tree (for reading in a terminal), else HTML
                out.write_text(prof.output_text(unicode=True, show_all=False))
            else:
                out.write_text(prof.output_html())
    n = args.orders
    kinds = collections.Counter(kind(s) for s in counter.statements)
    print(f"orders: {n}, load average {os.getloadavg()[0]:.1f}")
    print(
        f"statements/order: {len(counter.statements) / n:.2f}  "
        + "  ".join(f"{k} {v / n:.2f}" for k, v in sorted(kinds.items()))
    )
    print(f"CPU/order: {1000 * (c1 - c0) / n:.2f} ms (whole process: client + server)")
    print(f"wall/order: {1000 * (w1 - w0) / n:.2f} ms")
    if args.show:
        for s in one:
            print("  ", " ".join(s.split())[:240])
    db.dispose()
    return 0


FRAUD_RULES = {
    "rules": [
        {
            "code": "device-burst",
            "on": ["redemption"],
            "outcome": "block",
            "when": {"gt": {"device.redemptions.1m": 10}},
            "reason": "设备一分钟内兑换过多",
        },
        {
            "code": "device-ring",
            "on": ["order"],
            "outcome": "hold",
            "when": {"gte": {"device.members.1d": 1000}},
            "reason": "同一设备会员过多",
        },
        {
            "code": "member-orders",
            "on": ["order"],
            "outcome": "hold",
            "when": {"gt": {"member.orders.1h": 1000}},
            "reason": "会员一小时内下单过多",
        },
        {
            "code": "member-points",
            "on": ["order"],
            "outcome": "hold",
            "when": {"gt": {"member.orders_points.1d": 10_000_000}},
            "reason": "当天积分过多",
        },
        {
            "code": "store-burst",
            "on": ["order"],
            "outcome": "hold",
            "mode": "shadow",
            "when": {"gt": {"store.orders.1m": 100_000}},
            "reason": "门店一分钟内订单过多",
        },
        {
            "code": "ip-orders",
            "on": ["order"],
            "outcome": "hold",
            "mode": "shadow",
            "when": {"gt": {"ip.orders.1h": 1_000_000}},
            "reason": "同一地址下单过多",
        },
    ]
}


def _publish_fraud_rules(db: Any) -> None:
    from loyalist.documents import service as documents
    from loyalist.fraud import config
    from loyalist.kit.actor import SYSTEM

    with db.transaction() as s:
        documents.publish(s, SYSTEM, config.KIND, FRAUD_RULES, note="earn_profile --fraud")


def _key(url: str) -> str:
    from loyalist.access import service as access
    from loyalist.kit.db import Database

    db = Database(url)
    try:
        with db.transaction() as s:
            return access.create_key(s, name="prof", scope="hq").secret
    finally:
        db.dispose()


if __name__ == "__main__":
    sys.exit(main())
