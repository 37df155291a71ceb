"""Lookup by phone with personal data encrypted at rest (issue 13), at 200,000 members.

1. recreates the database (PostgreSQL ``loyalist_bench_lookup`` by default, or a SQLite
   file with ``--sqlite PATH``) and migrates it;
2. inserts N members (phone, name, e-mail encrypted with AES-GCM, blind indexes) and their
   phone identities through the models' column types, in batches;
3. times L lookups of random members by phone, each in the caller's open transaction:
   ``member.service.find_by_identity`` (the join path: blind index on member_identity, then
   the member row decrypted) and ``select(Member).where(Member.phone == …)`` (the blind
   index on member), and one lookup of a phone nobody has.

Prints ``RESULT members=<N> find_by_identity_p50_ms=… p99_ms=… member_phone_p50_ms=…
p99_ms=…``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DB_NAME = "loyalist_bench_lookup"
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc", sql],
        check=True,
        capture_output=True,
    )


def phone_of(i: int) -> str:
    return f"+86139{i:08d}"


def fill(url: str, n: int) -> None:
    from sqlalchemy import insert

    from loyalist.kit.crypto import blind
    from loyalist.kit.db import Database
    from loyalist.models import Member, MemberIdentity

    db = Database(url)
    now = datetime.now(UTC)
    batch = 5000
    t0 = time.perf_counter()
    for start in range(1, n + 1, batch):
        ids = range(start, min(start + batch, n + 1))
        members = [
            {
                "id": i,
                "member_no": f"M{i:09d}",
                "phone": phone_of(i),
                "email": f"m{i}@example.com",
                "name": f"会员{i}",
                "phone_bidx": blind("phone", phone_of(i)),
                "email_bidx": blind("email", f"m{i}@example.com"),
                "name_bidx": blind("name", f"会员{i}"),
                "org_path": "/hq/",
                "status": "active",
                "tier_code": "base",
                "tier_since": now,
                "tier_periods_below": 0,
                "created_at": now,
                "updated_at": now,
            }
            for i in ids
        ]
        idents = [
            {
                "member_id": i,
                "kind": "phone",
                "value": phone_of(i),
                "value_bidx": blind("phone", phone_of(i)),
                "created_at": now,
            }
            for i in ids
        ]
        with db.engine.begin() as conn:
            conn.execute(insert(Member), members)
            conn.execute(insert(MemberIdentity), idents)
    print(f"filled {n} members in {time.perf_counter() - t0:.1f}s", flush=True)
    db.dispose()


def measure(url: str, n: int, lookups: int) -> dict[str, float]:
    from sqlalchemy import select

    from loyalist.kit.db import Database
    from loyalist.member import service as members
    from loyalist.models import Member

    db = Database(url)
    rng = random.Random(13)
    a: list[float] = []
    b: list[float] = []
    with db.transaction() as s:
        members.find_by_identity(s, "phone", phone_of(1))  # warm caches, keyring
        for _ in range(lookups):
            i = rng.randint(1, n)
            t = time.perf_counter()
            m = members.find_by_identity(s, "phone", phone_of(i))
            a.append(time.perf_counter() - t)
            assert m is not None and m.id == i and m.phone == phone_of(i)
            s.expunge_all()
            j = rng.randint(1, n)
            t = time.perf_counter()
            got = s.scalar(select(Member).where(Member.phone == phone_of(j)))
            b.append(time.perf_counter() - t)
            assert got is not None and got.id == j
            s.expunge_all()
        assert members.find_by_identity(s, "phone", "+8613000000000") is None
    db.dispose()

    def q(xs: list[float], p: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000

    return {
        "find_by_identity_p50_ms": q(a, 0.5),
        "find_by_identity_p99_ms": q(a, 0.99),
        "find_by_identity_mean_ms": statistics.fmean(a) * 1000,
        "member_phone_p50_ms": q(b, 0.5),
        "member_phone_p99_ms": q(b, 0.99),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=200_000)
    ap.add_argument("--lookups", type=int, default=2000)
    ap.add_argument("--sqlite", type=Path, default=None, help="a SQLite file instead of PG")
    ap.add_argument("--reuse", action="store_true", help="measure an already filled database")
    args = ap.parse_args()
    from loyalist.kit.migrate import upgrade

    if args.reuse:
        url = f"sqlite:///{args.sqlite}" if args.sqlite is not None else PG_URL
        res = measure(url, args.members, args.lookups)
        print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in res.items()), flush=True)
        return
    if args.sqlite is not None:
        args.sqlite.unlink(missing_ok=True)
        url = f"sqlite:///{args.sqlite}"
    else:
        psql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        psql(f'CREATE DATABASE "{DB_NAME}"')
        url = PG_URL
    upgrade(url)
    fill(url, args.members)
    res = measure(url, args.members, args.lookups)
    print(
        f"RESULT members={args.members} " + " ".join(f"{k}={v:.3f}" for k, v in res.items()),
        flush=True,
    )


if __name__ == "__main__":
    main()
