"""Bulk import speed on PostgreSQL (issue 13, item 5): ``loyalist import orders`` of N rows.

1. recreates the database (``BENCH_DB``) and migrates it; creates an HQ, two
   regions, four stores and the demo programme;
2. imports M members from a CSV file (``bulkimport.runner``, as the CLI does);
3. writes an orders CSV of N rows (default 1,000,000) for those members over the last 30
   days, validates and imports it in batches of 2,000 rows per transaction (set-based:
   ``order.service.record_many`` — the earn rules of ``record``, ledger lots and hash
   chain, events, audit, each table written by one COPY per batch) in ``--processes``
   writer processes and times it (wall, and CPU seconds of the importing processes);
4. re-runs the same file (must change nothing) and runs ``ledger verify`` (must be clean);
5. the reference, measured in the same run: PostgreSQL ``COPY`` of the same file into an
   unlogged table of the same columns (the floor any import pays to move the bytes).

Prints ``RESULT import_rows=<N> import_rows_per_s=<..> validate_s=<..> copy_rows_per_s=<..>
ratio=<import ÷ copy> rerun_changed=<0> verify=<clean|PROBLEMS> processes=<N>
load=<1-minute load average at the end> commit=<git commit>``. ``BENCH_DB`` names the
database (default ``loyalist_bench_import``).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DB_NAME = os.environ.get("BENCH_DB", "loyalist_bench_import")
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"
STORES = {"sh1": "east", "sh2": "east", "sz1": "south", "gz1": "south"}


def log(msg: str) -> None:
    print(msg, flush=True)


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc", sql],
        check=True,
        capture_output=True,
    )


def setup(url: str) -> None:
    from loyalist.kit.db import Database
    from loyalist.kit.migrate import upgrade
    from loyalist.org import service as org
    from loyalist.programme import service as programmes

    upgrade(url)
    db = Database(url)
    with db.transaction() as s:
        org.create_unit(s, code="hq", name="总部", kind="hq")
        org.create_unit(s, code="east", name="华东区", kind="region", parent_code="hq")
        org.create_unit(s, code="south", name="华南区", kind="region", parent_code="hq")
        for code, region in STORES.items():
            org.create_unit(s, code=code, name=f"门店 {code}", kind="store", parent_code=region)
        programmes.apply(
            s, programmes.load_file(ROOT / "src/loyalist/demo/programme.yaml"), actor="bench"
        )
    db.dispose()


def cpu() -> float:
    """CPU seconds of this process and its finished children (the writer processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD"]).returncode
    return out.stdout.strip() + ("+dirty" if dirty else "")


def orders_csv(path: Path, n: int, members: int) -> None:
    now = datetime.now(UTC)
    stores = list(STORES)
    with path.open("w", encoding="utf-8") as f:
        f.write("external_id,member,store,occurred_at,amount_paid_minor,channel,category\n")
        for i in range(n):
            at = now - timedelta(days=30) + timedelta(seconds=(i * 2_591_000) // max(n, 1))
            f.write(
                f"IMP-{i:08d},C{i % members:07d},{stores[i % 4]},{at.isoformat()},"
                f"{500 + (i * 7919) % 30000},{'app' if i % 5 == 0 else 'pos'},"
                f"{'coffee_beans' if i % 7 == 0 else 'coffee'}\n"
            )


def copy_reference(url: str, path: Path) -> float:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE UNLOGGED TABLE IF NOT EXISTS copy_ref (external_id text, member text,"
            " store text, occurred_at timestamptz, amount_paid_minor bigint, channel text,"
            " category text)"
        )
        cur.execute("TRUNCATE copy_ref")
        conn.commit()
        t0 = time.perf_counter()
        with path.open("rb") as f, cur.copy("COPY copy_ref FROM STDIN (FORMAT csv, HEADER)") as cp:
            while chunk := f.read(1 << 20):
                cp.write(chunk)
        conn.commit()
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--members", type=int, default=2_000)
    ap.add_argument("--batch-rows", type=int, default=2_000)
    ap.add_argument("--processes", type=int, default=1, help="writer processes (--processes)")
    ap.add_argument("--profile", type=Path, help="write a cProfile of the import to this file")
    args = ap.parse_args()

    from sqlalchemy import func, select

    from loyalist.bulkimport import runner
    from loyalist.kit.actor import Actor
    from loyalist.kit.db import Database
    from loyalist.ledger import service as ledger
    from loyalist.models import LedgerEntry, Order

    psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB_NAME}")
    setup(PG_URL)
    actor = Actor(name="bench:import", scope_path="/", principal="bench:import")
    db = Database(PG_URL)
    tmp = Path(tempfile.mkdtemp(prefix="bench_import_"))
    members = "external_id,phone\n" + "".join(
        f"C{i:07d},+86137{i:08d}\n" for i in range(args.members)
    )
    t0 = time.perf_counter()
    out = runner.run(db, actor, "members", members.encode(), "members.csv")
    m_s = time.perf_counter() - t0
    log(f"members: {out.created} in {m_s:.1f} s ({out.created / m_s:,.0f} rows/s)")

    path = tmp / "orders.csv"
    orders_csv(path, args.rows, args.members)
    data = path.read_bytes()
    log(f"orders file: {args.rows} rows, {len(data) / 1e6:.1f} MB")
    t0 = time.perf_counter()
    v = runner.check(db, actor, "orders", data, path.name)
    validate_s = time.perf_counter() - t0
    assert v.ok, v.errors[:5]
    log(f"validated in {validate_s:.1f} s (load average {os.getloadavg()[0]:.1f})")
    last = [time.perf_counter()]

    shown: set[int] = set()

    def progress(done: int, total: int) -> None:
        mark = total if done == total else done // 20_000 * 20_000
        if mark and mark not in shown:  # each 20,000 rows once (processes: polled)
            shown.add(mark)
            log(f"  {done}/{total} ({time.perf_counter() - last[0]:.1f} s)")

    prof = None
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    cpu0 = cpu()
    out = runner.run(
        db,
        actor,
        "orders",
        data,
        path.name,
        batch_rows=args.batch_rows,
        progress=progress,
        validation=v,
        processes=args.processes,
    )
    write_s = time.perf_counter() - t0
    cpu_s = cpu() - cpu0
    if prof is not None:
        prof.disable()
        prof.dump_stats(str(args.profile))
    rate = args.rows / write_s
    log(
        f"imported {out.created} orders in {write_s:.1f} s: {rate:,.0f} rows/s"
        f" ({args.rows / cpu_s:,.0f} rows per CPU-second of the importing processes)"
    )

    def tally() -> tuple[int, int]:
        with db.transaction() as s:
            return (
                int(s.scalar(select(func.count()).select_from(Order)) or 0),
                int(s.scalar(select(func.count()).select_from(LedgerEntry)) or 0),
            )

    before = tally()
    again = runner.run(db, actor, "orders", data, path.name)
    changed = int(tally() != before or again.status != "already_done")
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
    verify = "clean" if not problems else f"PROBLEMS({len(problems)})"
    copy_s = copy_reference(PG_URL, path)
    copy_rate = args.rows / copy_s
    log(f"reference COPY: {copy_s:.2f} s ({copy_rate:,.0f} rows/s)")
    db.dispose()
    log(
        f"RESULT import_rows={args.rows} import_rows_per_s={rate:.0f} "
        f"validate_s={validate_s:.1f} copy_rows_per_s={copy_rate:.0f} "
        f"ratio={rate / copy_rate:.4f} rerun_changed={changed} verify={verify} "
        f"processes={args.processes} load={os.getloadavg()[0]:.1f} commit={commit()}"
    )


if __name__ == "__main__":
    main()
