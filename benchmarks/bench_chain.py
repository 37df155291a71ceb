"""Cost of the ledger's hash chain within one transaction (issue 13, item 5).

Writes N credits to one account in a single transaction (every credit flushes, as the
services do) and prints the seconds per transaction for N = 100 and N = 1000 and their
ratio per entry: a chain sealed in linear time costs about the same per entry at both
sizes (ratio ≈ 1); a quadratic one costs ~10× more per entry at N = 1000.

    python benchmarks/bench_chain.py [--url sqlite:///...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    from loyalist.kit.actor import Actor
    from loyalist.kit.clock import utcnow
    from loyalist.kit.db import Database
    from loyalist.kit.migrate import upgrade
    from loyalist.ledger import service as ledger
    from loyalist.member import service as members
    from loyalist.member.schemas import MemberCreate
    from loyalist.programme import service as programmes

    p = argparse.ArgumentParser()
    p.add_argument("--url", default=None)
    args = p.parse_args()
    tmp = tempfile.mkdtemp()
    url = args.url or f"sqlite:///{tmp}/chain.db"
    upgrade(url)
    db = Database(url)
    actor = Actor(name="bench", scope_path="/", principal="bench")
    per_entry: dict[int, float] = {}
    for n in (100, 1000):
        with db.transaction() as s:
            if n == 100:
                programmes.apply(
                    s,
                    programmes.load_file(ROOT / "src/loyalist/demo/programme.yaml"),
                    actor="bench",
                )
            mid = members.create(s, actor, MemberCreate(external_id=f"chain-{n}")).member.id
        t0 = time.perf_counter()
        with db.transaction() as s:
            acct = ledger.lock(s, mid, "/")
            for i in range(n):
                at = utcnow() - timedelta(days=1)
                ledger.credit(
                    s,
                    acct,
                    10,
                    ledger.Cause(source_type="bench", source_id=str(i), occurred_at=at),
                    kind="earn",
                    earned_at=at,
                    available_at=at,
                    expires_at=None,
                )
        secs = time.perf_counter() - t0
        per_entry[n] = secs / n
        print(f"N={n}: {secs:.3f} s per transaction, {secs / n * 1000:.3f} ms per entry")
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
    print(
        f"RESULT per_entry_ratio_1000_vs_100={per_entry[1000] / per_entry[100]:.2f}"
        f" verify={'clean' if not problems else 'PROBLEMS'}"
    )
    db.dispose()


if __name__ == "__main__":
    main()
