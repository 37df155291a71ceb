"""The console's import path against the CLI's on PostgreSQL (issue 13 item 5).

The console imports a file by background jobs (``bulkimport.uploads``): each job reads its
slice of the file's rows (kept as JSON lines at the upload), validates the slice against
the database and writes it, one transaction per job, like the CLI's batches. This measures
what that costs beside the CLI's path, in the same run, on the same database:

1. recreates ``loyalist_bench_import_console``, an HQ, two regions, four stores, the demo
   programme, M members and an HQ admin;
2. imports three orders files of N rows each (other external ids, same shape): the CLI's
   ``runner.run`` (reference), the console's path (``uploads.keep`` + ``uploads.start`` +
   the jobs run by ``queue.run_until_empty``), the CLI's again (the mean of the two CLI runs
   is the reference: the tables grow between runs);
3. the console's slice read alone at the end of a kept file of R rows (default 1,000,000):
   the per-job cost of skipping to its slice.

Prints ``RESULT rows=<N> cli_rows_per_s=<..> console_rows_per_s=<..> ratio=<console ÷ cli>
upload_keep_s=<..> slice_read_ms_at_end_of_<R>=<..> rerun_changed=<0> verify=<clean|…>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
DB_NAME = "loyalist_bench_import_console"
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"


def log(msg: str) -> None:
    print(msg, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--members", type=int, default=2_000)
    ap.add_argument("--slice-file-rows", type=int, default=1_000_000)
    ap.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_import_console_"))
    url = f"sqlite:///{tmp / 'bench.db'}" if args.sqlite else PG_URL
    os.environ["LOYALIST_IMPORT_DIR"] = str(tmp / "imports")

    from sqlalchemy import func, select

    from bench_import import orders_csv, psql, setup
    from loyalist import bootstrap
    from loyalist.bulkimport import runner, uploads
    from loyalist.jobs import queue
    from loyalist.kit.actor import Actor
    from loyalist.kit.db import Database
    from loyalist.ledger import service as ledger
    from loyalist.models import Job, LedgerEntry, Order
    from loyalist.staff import service as staff

    bootstrap.configure()
    if not args.sqlite:
        psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        psql(f"CREATE DATABASE {DB_NAME}")
    setup(url)
    db = Database(url)
    cli = Actor(name="bench:import", scope_path="/", principal="bench:import")
    members = "external_id,phone\n" + "".join(
        f"C{i:07d},+86137{i:08d}\n" for i in range(args.members)
    )
    runner.run(db, cli, "members", members.encode(), "members.csv")
    with db.transaction() as s:
        staff.create_user(s, login="bench", role="hq_admin", unit_code="hq", password="x" * 12)
        admin = staff.actor_for(s, staff.get_by_login(s, "bench"))

    files: dict[str, bytes] = {}

    def orders_file(tag: str) -> bytes:  # once per tag (its times are relative to now)
        if tag in files:
            return files[tag]
        path = tmp / f"orders-{tag}.csv"
        orders_csv(path, args.rows, args.members)
        files[tag] = path.read_bytes().replace(b"IMP-", f"{tag}-".encode())
        return files[tag]

    def by_cli(tag: str) -> float:
        data = orders_file(tag)
        t0 = time.perf_counter()
        out = runner.run(db, cli, "orders", data, f"{tag}.csv")
        took = time.perf_counter() - t0
        assert out.created == args.rows, out
        log(f"CLI {tag}: {args.rows / took:,.0f} rows/s")
        return args.rows / took

    def by_console(tag: str) -> tuple[float, float]:
        data = orders_file(tag)
        t0 = time.perf_counter()
        v = runner.check(db, admin, "orders", data, f"{tag}.csv")  # the upload's validation
        assert v.ok, v.errors[:5]
        t1 = time.perf_counter()
        digest = uploads.keep(data, ".csv")
        keep_s = time.perf_counter() - t1
        with db.transaction() as s:
            uploads.start(s, admin, "bench", "orders", digest, ".csv", f"{tag}.csv")
        jobs = queue.run_until_empty(db)
        took = time.perf_counter() - t0
        log(f"console {tag}: {args.rows / took:,.0f} rows/s ({jobs} jobs, keep {keep_s:.2f} s)")
        return args.rows / took, keep_s

    first = by_cli("CLI1")
    console, keep_s = by_console("WEB")
    second = by_cli("CLI2")
    cli_rate = (first + second) / 2

    def tally() -> tuple[int, int]:
        with db.transaction() as s:
            return (
                int(s.scalar(select(func.count()).select_from(Order)) or 0),
                int(s.scalar(select(func.count()).select_from(LedgerEntry)) or 0),
            )

    def import_jobs() -> int:
        with db.transaction() as s:
            q = select(func.count()).select_from(Job).where(Job.kind == uploads.JOB_KIND)
            return int(s.scalar(q) or 0)

    before, jobs_before = tally(), import_jobs()  # the console's file again: nothing written
    data = orders_file("WEB")
    digest = uploads.keep(data, ".csv")
    with db.transaction() as s:
        again = uploads.start(s, admin, "bench", "orders", digest, ".csv", "WEB.csv")
    changed = int(tally() != before or again.queued or import_jobs() != jobs_before)
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
    verify = "clean" if not problems else f"PROBLEMS({len(problems)})"

    big = tmp / "big.csv"
    orders_csv(big, args.slice_file_rows, args.members)
    big_digest = uploads.keep(big.read_bytes(), ".csv")
    t0 = time.perf_counter()
    _h, part = uploads.read_slice(
        big_digest, ".csv", args.slice_file_rows - uploads.JOB_ROWS, uploads.JOB_ROWS
    )
    slice_ms = (time.perf_counter() - t0) * 1000
    assert len(part) == uploads.JOB_ROWS
    db.dispose()
    log(
        f"RESULT db={db.dialect} rows={args.rows} cli_rows_per_s={cli_rate:.0f} "
        f"console_rows_per_s={console:.0f} ratio={console / cli_rate:.3f} "
        f"upload_keep_s={keep_s:.2f} slice_read_ms_at_end_of_{args.slice_file_rows}={slice_ms:.0f} "
        f"rerun_changed={changed} verify={verify}"
    )


if __name__ == "__main__":
    main()
