"""What a fraud decision adds to an order, in process: ``fraud.check`` + ``fraud.settle``
(the counter upserts, the device sighting, the check row) timed inside real transactions
on the database ``--url`` (built by ``earn_profile.py``; its fraud rules are published with
``--fraud``, or here with ``--publish``). Prints wall and CPU ms per decision.

Usage: .venv/bin/python benchmarks/fraud_check_cost.py --url URL [--checks 500] [--publish]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--checks", type=int, default=500)
    ap.add_argument("--publish", action="store_true")
    args = ap.parse_args()

    from sqlalchemy import select

    from loyalist.fraud import service as fraud
    from loyalist.kit.db import Database
    from loyalist.models import Member

    db = Database(args.url)
    if args.publish:
        import earn_profile

        earn_profile._publish_fraud_rules(db)
    with db.transaction() as s:
        members = list(s.scalars(select(Member.id).limit(200)))
        n_rules = len(fraud.config.active(s).rules)

    def one(i: int, empty: bool = False) -> float:
        with db.transaction() as s:
            t0 = time.perf_counter()
            if empty:  # the baseline: the same transaction without a decision
                return time.perf_counter() - t0
            checked = fraud.check(
                s,
                kind="order",
                member_id=members[i % len(members)],
                device_id=f"dev-{i % 50}",
                store_id=1,
                points=120,
                amount_minor=12_000,
            )
            fraud.settle(s, checked, source_id=i + 1, member_id=1, org_path="/", lot=None)
            s.flush()
            return time.perf_counter() - t0

    for i in range(50):  # warm-up
        one(i)
    c0 = time.process_time()
    walls = sorted(one(100 + i) for i in range(args.checks))
    c1 = time.process_time()
    b0 = time.process_time()
    for i in range(args.checks):
        one(i, empty=True)
    b1 = time.process_time()
    n = args.checks
    print(f"rules: {n_rules}, decisions: {n}")
    print(f"CPU/empty transaction (baseline): {1000 * (b1 - b0) / n:.2f} ms")
    med, p95 = 1000 * walls[n // 2], 1000 * walls[int(n * 0.95)]
    print(f"wall/decision: median {med:.2f} ms, p95 {p95:.2f} ms")
    print(f"CPU/decision (whole loop, incl. commit): {1000 * (c1 - c0) / n:.2f} ms")
    db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
