"""A 双11-shaped peak: mixed traffic ramped to twice the sustainable rate and back.

What it does (see docs/benchmarks.md, "Peak"):
  1. builds the bench data (as bench_earn: org, demo programme, members) in its own database
     ``loyalist_bench_peak`` and gives every member 20,000 points to spend;
  2. starts the real server (``loyalist serve --no-scheduler --workers 2``);
  3. measures the sustainable rate R: 16 closed-loop connections for 20 s of the mix;
  4. drives an open-loop schedule for ``--minutes`` (10): 0.7 R, a one-minute ramp to 2 R,
     two minutes (a fifth of the run) at 2 R, a ramp back, 0.7 R to the end. Requests leave
     at their scheduled times whether or not earlier ones were answered (a real peak does not
     wait for the server); latency counts from the scheduled time. The mix: 55 % earn
     (``POST /v1/orders``), 30 % reads (``GET /v1/members/{id}``), 10 % redemptions, 5 %
     full returns of orders answered earlier. 3 % of writes are sent twice with the same
     Idempotency-Key (a client that did not trust its first answer); an answer 503 or a
     broken connection is retried with the same key after ``Retry-After`` (at most 5 tries);
  5. checks: every request answered 2xx or a correct 4xx (409: not enough points, a limit,
     already returned) — the success rate, goal ≥ 99.9 %; every acknowledged order holds
     exactly the points its answer said, once; every acknowledged redemption exists once;
     a repeated key got the same answer; ``loyalist ledger verify`` is clean;
  6. writes the latency over time (p50/p99 per 10 s, offered and answered rate, 503s) as
     ``var/bench/peak.svg`` and prints ``RESULT peak_success=… lost=… doubled=… p99_peak_ms=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("BENCH_DB", "loyalist_bench_peak")

import orjson

import bench_earn as be
import procs
from procs import cleanup, free_port, log

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
START_POINTS = 20_000
REWARDS = ["americano", "latte", "croissant", "cake-slice"]
MIX = [("earn", 55), ("read", 30), ("redeem", 10), ("return", 5)]
OK_4XX = {"redeem": {409}, "return": {409}}


@dataclass
class Result:
    op: str
    scheduled: float  # monotonic
    answered: float
    status: int  # final status (0: no answer)
    tries: int
    refused: int = 0  # answers 503 (overloaded) before the final one
    body: bytes = b""


@dataclass
class Book:
    """What the clients were told, to compare with the database afterwards."""

    orders: dict[int, int] = field(default_factory=dict)  # order id -> points earned
    order_pool: list[int] = field(default_factory=list)  # acknowledged, not yet returned
    redemptions: set[int] = field(default_factory=set)
    repeats: int = 0
    repeat_mismatch: list[str] = field(default_factory=list)


class Pool:
    """Keep-alive HTTP/1.1 connections to the server, one request at a time each."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = (
            asyncio.Queue()
        )
        for _ in range(size):
            self.free.put_nowait(None)  # opened on first use

    async def request(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = await self.free.get()
        try:
            if conn is not None:
                # The server closes a keep-alive connection idle for 5 s (uvicorn's default);
                # like any HTTP client, send on a fresh one when the kept one was closed.
                with contextlib.suppress(Exception):
                    if conn[0].at_eof() or conn[1].is_closing():
                        conn[1].close()
                        conn = None
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = conn
            writer.write(raw)
            status, head, body = await asyncio.wait_for(procs.read_answer(reader), timeout=60)
            headers = {
                k.decode().lower(): v.decode()
                for k, v in re.findall(rb"\r\n([^:\r\n]+):\s*([^\r\n]*)", head)
            }
            self.free.put_nowait(conn)
            return status, headers, body
        except BaseException:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn[1].close()
            self.free.put_nowait(None)
            raise


class Traffic:
    def __init__(self, port: int, key: str, members: list[int], seed: int, size: int) -> None:
        self.pool = Pool(port, size)
        self.port = port
        self.key = key
        self.members = members
        self.rng = random.Random(seed)
        self.basket = be.Basket(random.Random(seed + 1), members)
        self.book = Book()
        self.results: list[Result] = []
        self.run = uuid.uuid4().hex[:8]
        self.seq = 0

    def _raw(self, method: str, path: str, body: bytes | None, idem: str | None) -> bytes:
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            f"Authorization: Bearer {self.key}",
        ]
        if idem:
            head.append(f"Idempotency-Key: {idem}")
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")

    def next_request(self) -> tuple[str, str, str, bytes | None, bool]:
        """(op, method, path, body, is a write)"""
        op = self.rng.choices([m for m, _ in MIX], [w for _, w in MIX])[0]
        self.seq += 1
        if op == "return" and not self.book.order_pool:
            op = "earn"
        if op == "earn":
            body = self.basket.order(f"peak-{self.run}-{self.seq}")
            return op, "POST", "/v1/orders", body, True
        if op == "read":
            return op, "GET", f"/v1/members/{self.rng.choice(self.members)}", None, False
        if op == "redeem":
            body = orjson.dumps(
                {"member_id": self.rng.choice(self.members), "reward": self.rng.choice(REWARDS)}
            )
            return op, "POST", "/v1/redemptions", body, True
        pool = self.book.order_pool
        order_id = pool.pop(self.rng.randrange(len(pool)))
        body = orjson.dumps({"return_id": f"peak-{self.seq}", "full": True})
        return op, "POST", f"/v1/orders/{order_id}/returns", body, True

    async def send(self, scheduled: float) -> None:
        op, method, path, body, write = self.next_request()
        idem = uuid.uuid4().hex if write else None
        raw = self._raw(method, path, body, idem)
        status, payload, tries, refused = 0, b"", 0, 0
        while tries < 5:
            tries += 1
            try:
                status, headers, payload = await self.pool.request(raw)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                status = 0
                await asyncio.sleep(1)
                continue
            if status != 503:
                break
            refused += 1
            await asyncio.sleep(float(headers.get("retry-after", "1")))
        answered = time.monotonic()
        self.results.append(Result(op, scheduled, answered, status, tries, refused, payload[:300]))
        if 200 <= status < 300:
            self._book(op, payload)
            if write and self.rng.random() < 0.03:
                await self._repeat(raw, status, payload)

    def _book(self, op: str, payload: bytes) -> None:
        doc = orjson.loads(payload)
        if op == "earn":
            self.book.orders[int(doc["id"])] = int(doc["points"]["earned"])
            self.book.order_pool.append(int(doc["id"]))
        elif op == "redeem":
            self.book.redemptions.add(int(doc["id"]))

    async def _repeat(self, raw: bytes, status: int, payload: bytes) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
            again, _h, body = await self.pool.request(raw)
            if again == 503:
                return  # refused before any work: the first answer stands
            self.book.repeats += 1
            same = again in (status, 200) and _id(body) == _id(payload)
            if not same:
                self.book.repeat_mismatch.append(f"{status}->{again}: {body[:200]!r}")


def _id(body: bytes) -> object:
    with contextlib.suppress(Exception):
        return orjson.loads(body).get("id")
    return None


def schedule(rate: float, minutes: float) -> list[float]:
    """Offsets (s) of the requests: 0.7 R, ramp to 2 R, hold, ramp back, 0.7 R."""
    total = minutes * 60
    marks = [0.0, 0.3 * total, 0.4 * total, 0.6 * total, 0.7 * total, total]
    levels = [0.7, 0.7, 2.0, 2.0, 0.7, 0.7]

    def lam(t: float) -> float:
        for i in range(len(marks) - 1):
            if marks[i] <= t <= marks[i + 1]:
                f = (t - marks[i]) / ((marks[i + 1] - marks[i]) or 1)
                return rate * (levels[i] + f * (levels[i + 1] - levels[i]))
        return rate * levels[-1]

    out, t = [], 0.0
    while t < total:
        out.append(t)
        t += 1.0 / max(lam(t), 0.1)
    return out


async def closed_loop(traffic: Traffic, clients: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    done = 0

    async def one() -> None:
        nonlocal done
        while time.monotonic() < stop:
            await traffic.send(time.monotonic())
            done += 1

    await asyncio.gather(*(one() for _ in range(clients)))
    return done / seconds


async def open_loop(traffic: Traffic, offsets: list[float]) -> None:
    t0 = time.monotonic()
    tasks = []
    for off in offsets:
        delay = t0 + off - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(traffic.send(t0 + off)))
    await asyncio.gather(*tasks)


def give_points(members: list[int]) -> None:
    from loyalist.kit.actor import SYSTEM
    from loyalist.kit.db import Database
    from loyalist.member import service as member_service

    db = Database(be.BENCH_URL)
    try:
        for start in range(0, len(members), 200):
            with db.transaction() as s:
                for mid in members[start : start + 200]:
                    member_service.adjust_points(s, SYSTEM, mid, START_POINTS, "peak bench")
    finally:
        db.dispose()


def check_database(book: Book) -> tuple[int, int, list[str]]:
    """(lost, doubled, notes): acknowledged writes against what the database holds."""
    rows = be.psql(
        "SELECT source_id, count(*), sum(delta_available + delta_pending) FROM ledger_entry "
        "WHERE kind = 'earn' AND source_type = 'order' GROUP BY source_id",
        be.BENCH_DB,
    )
    earned: dict[int, tuple[int, int]] = {}
    for line in rows.split("\n"):
        if line.strip():
            sid, n, pts = line.split("|")
            earned[int(sid)] = (int(n), int(pts))
    lost = doubled = 0
    notes: list[str] = []
    for oid, pts in book.orders.items():
        n, got = earned.get(oid, (0, 0))
        if pts and n == 0:
            lost += 1
            notes.append(f"order {oid}: {pts} points acknowledged, none in the ledger")
        elif n > 1:
            doubled += 1
            notes.append(f"order {oid}: earned {n} times")
        elif pts and got != pts:
            lost += 1
            notes.append(f"order {oid}: {pts} acknowledged, {got} in the ledger")
    if book.redemptions:
        ids = ",".join(str(i) for i in sorted(book.redemptions))
        found = int(be.psql(f"SELECT count(*) FROM redemption WHERE id IN ({ids})", be.BENCH_DB))
        if found != len(book.redemptions):
            lost += len(book.redemptions) - found
            notes.append(f"{len(book.redemptions) - found} acknowledged redemptions missing")
    return lost, doubled, notes


def chart(results: list[Result], t0: float, path: Path) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from loyalist.analytics.charts import line_chart

    buckets: dict[int, list[Result]] = defaultdict(list)
    for r in results:
        buckets[int((r.scheduled - t0) // 10)].append(r)
    xs = sorted(buckets)
    p50, p99, offered, refused = [], [], [], []
    for b in xs:
        lat = sorted((r.answered - r.scheduled) * 1000 for r in buckets[b])
        p50.append(lat[len(lat) // 2])
        p99.append(lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)])
        offered.append(len(buckets[b]) / 10)
        refused.append(sum(r.refused for r in buckets[b]) / 10)
    minutes = [b * 10 / 60 for b in xs]
    svg = line_chart(
        minutes, [("p50 ms", p50), ("p99 ms", p99)], title="latency (ms)", x_label="minutes"
    )
    svg2 = line_chart(
        minutes,
        [("offered req/s", offered), ("answered 503 overloaded, per s", refused)],
        title="load (requests/s)",
        x_label="minutes",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    top = svg.replace("width='100%'", "x='0' y='0' width='720' height='300'", 1)
    low = svg2.replace("width='100%'", "x='0' y='310' width='720' height='300'", 1)
    path.write_text(
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 720 620' width='720' "
        f"height='620'><rect width='720' height='620' fill='white'/>{top}{low}</svg>\n"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=128)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--chart", default=str(ROOT / "var" / "bench" / "peak.svg"))
    args = ap.parse_args()
    procs.clean_up_on_exit()
    sys.path.insert(0, str(ROOT / "src"))

    log(procs.heading("bench_peak", be.git_commit()))
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-postgres.sh"), be.BENCH_URL], check=True)
    be.recreate_database(be.BENCH_DB)
    key = be.build_data(args.members, args.seed, be.BENCH_URL)
    members = be.member_ids()
    give_points(members)
    port = free_port()
    server = procs.start_server(be.BENCH_URL, port, args.workers)
    sampler = be.RssSampler(server.pid)
    sampler.start()

    warm = Traffic(port, key, members, args.seed, 16)
    rate = asyncio.run(closed_loop(warm, 16, 20.0))
    log(f"sustainable rate R (16 closed-loop connections, 20 s of the mix): {rate:.1f} req/s")

    traffic = Traffic(port, key, members, args.seed + 7, args.connections)
    traffic.book = warm.book  # orders answered in the warm-up may be returned too
    offsets = schedule(rate, args.minutes)
    log(
        f"open loop: {len(offsets)} requests over {args.minutes:g} min "
        f"(0.7 R = {0.7 * rate:.0f}/s, peak 2 R = {2 * rate:.0f}/s)"
    )
    t0 = time.monotonic()
    asyncio.run(open_loop(traffic, offsets))
    sampler.stop.set()
    procs.kill_tree(server)

    results = traffic.results
    statuses = Counter((r.op, r.status) for r in results)
    good = sum(1 for r in results if 200 <= r.status < 300 or r.status in OK_4XX.get(r.op, set()))
    success = good / len(results)
    retried = sum(r.tries > 1 for r in results)
    overloaded = sum(r.refused for r in results)
    peak = [
        r for r in results if 0.4 * args.minutes * 60 <= r.scheduled - t0 <= 0.6 * args.minutes * 60
    ]
    lat = sorted((r.answered - r.scheduled) * 1000 for r in peak) or [0.0]
    p99_peak = lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)]
    allat = sorted((r.answered - r.scheduled) * 1000 for r in results)
    p99_all = allat[min(len(allat) - 1, math.ceil(0.99 * len(allat)) - 1)]
    lost, doubled, notes = check_database(traffic.book)
    verify = subprocess.run(
        [str(VENV_BIN / "loyalist"), "ledger", "verify"],
        env={**os.environ, "LOYALIST_DATABASE_URL": be.BENCH_URL},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    chart(results, t0, Path(args.chart))

    log(f"answers by operation and status: {dict(sorted(statuses.items()))}")
    bad = [r for r in results if not (200 <= r.status < 300 or r.status in OK_4XX.get(r.op, set()))]
    for r in bad[:5]:
        log(f"  not a success: {r.op} {r.status} after {r.tries} tries: {r.body[:160]!r}")
    log(f"requests {len(results)}, success {success * 100:.3f} % (goal ≥ 99.9 %)")
    log(f"requests retried: {retried} ({overloaded} answers 503 overloaded, with Retry-After)")
    log(
        f"repeated keys: {traffic.book.repeats + warm.book.repeats}, "
        f"different answers: {len(traffic.book.repeat_mismatch)}"
    )
    log(
        f"latency from the scheduled time: p99 overall {p99_all:.0f} ms, p99 at the peak "
        f"{p99_peak:.0f} ms"
    )
    log(f"server peak RSS {sampler.peak / 1024 / 1024:.0f} MB")
    log(
        f"acknowledged orders {len(traffic.book.orders)}, redemptions "
        f"{len(traffic.book.redemptions)}: lost {lost}, doubled {doubled}"
    )
    for n in notes[:10]:
        log("  " + n)
    log("ledger verify: " + (verify.stdout + verify.stderr).strip().splitlines()[-1])
    log(f"chart: {args.chart}")
    log(
        f"RESULT peak_success={success:.5f} lost={lost} doubled={doubled} "
        f"p99_peak_ms={p99_peak:.0f} rate_r={rate:.1f} ledger_verify="
        f"{'clean' if verify.returncode == 0 else 'FAILED'}"
    )
    failed = lost or doubled or verify.returncode or traffic.book.repeat_mismatch
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup()
