"""Python instructions per recorded order (valgrind), repeatable on a busy machine.

CPU seconds measured while other work shares the cores swing by half (caches, frequency);
an instruction count does not. This script records orders in process through the service
path the API runs (``run_idempotent`` → ``order.record_view`` → the JSON answer, its
after-commit stream positions; no HTTP), on the bench data ``earn_profile.py`` builds
(``loyalist_speed_prof``, or ``--url``). Run plainly it starts itself twice under
``valgrind --tool=cachegrind`` — once recording ``--base`` orders, once ``--base`` +
``--orders`` — and prints the difference per order: the start-up, imports and warm-up cancel
out. PostgreSQL's own work is not counted (another process).

Usage: .venv/bin/python benchmarks/earn_instructions.py [--orders 40] [--base 10]
       [--src DIR]  (measure another checkout's ``src``, e.g. a ``git archive`` of a commit)
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/loyalist_speed_prof"
WARM_UP = 20


def record(url: str, n: int) -> None:
    """Warm up, then record ``n`` orders (the part that differs between the two runs)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_earn
    from loyalist.app import create_app
    from loyalist.config import Settings
    from loyalist.kit.db import Database

    dbname = url.rsplit("/", 1)[-1]
    members = [int(x) for x in bench_earn.psql("SELECT id FROM member", dbname).split()]
    db = Database(url)
    create_app(Settings(database_url=url, run_scheduler=False), db)  # every registration
    basket = bench_earn.Basket(random.Random(11), members)
    run = uuid.uuid4().hex[:8]
    for i in range(WARM_UP + n):
        bench_earn.record_in_process(db, basket.order(f"ins-{run}-{i}"))
    db.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--url", default=DEFAULT_URL)
    ap.add_argument("--orders", type=int, default=40)
    ap.add_argument("--base", type=int, default=10)
    ap.add_argument("--src", type=Path, default=ROOT / "src")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        record(args.url, args.child)
        return 0
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import procs

    low, high, per = procs.instructions_per_step(
        Path(__file__),
        args.src,
        lambda n: ["--child", str(n), "--url", args.url],
        args.base,
        args.orders,
    )
    print(f"src: {args.src}")
    print(f"instructions: {low:,} ({args.base} orders), {high:,} ({args.base + args.orders})")
    print(f"instructions/order: {per / 1e6:.2f} M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
