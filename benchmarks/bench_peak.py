"""A 双11-shaped peak: mixed traffic ramped to twice the sustainable rate and back.

What it does (see docs/benchmarks.md, "Peak"):
  1. builds the bench data (as bench_earn: org, demo programme, members) in its own database
     ``loyalist_bench_peak`` and gives every member 20,000 points to spend;
  2. starts the real server (``loyalist serve --no-scheduler --workers 2``);
  3. measures the sustainable rate R: 16 closed-loop connections for 20 s of the mix;
  4. drives an open-loop schedule for ``--minutes`` (10): 0.7 R, a one-minute ramp to 2 R,
     two minutes (a fifth of the run) at 2 R, a ramp back, 0.7 R to the end. Customers
     arrive at their scheduled times whether or not earlier ones were answered (a real peak
     does not wait for the server); latency counts from the scheduled time. The mix: 55 %
     earn (``POST /v1/orders``), 30 % reads (``GET /v1/members/{id}``), 10 % redemptions,
     5 % full returns of orders answered earlier. 3 % of successful writes are sent again
     with the same Idempotency-Key (a client that did not trust its first answer);
  5. models the tills: ``--tills`` (600) terminals, each with one kept connection and one
     transaction at a time; every scheduled customer goes to a till drawn at random and
     waits in its queue (so at the peak the queues grow at the tills, as in a shop, and the
     server sees at most 600 requests at once, more than its admission control admits). A
     till answered 503 (or whose connection broke) keeps its transaction and sends it again
     with the same key after ``Retry-After``, doubling the wait on each refusal up to
     ``--backoff-cap`` (30 s), times a jitter of 1–1.5; it gives up only when the
     transaction is ``--keep`` (600 s) old or the schedule ended ``--drain`` (240 s) ago
     (a customer still queued then walks away unsent: a failure too). Until session 11
     every request was its own terminal with its own connection: under the backlog of a
     peak that meant tens of thousands of sockets and retries, and the client itself (on
     the same two cores) lagged tens of seconds and ran out of file descriptors;
  6. checks: every request answered 2xx or a correct 4xx (409: not enough points, a limit,
     already returned) — the success rate, goal ≥ 99.9 %; every acknowledged order holds
     exactly the points its answer said, once; every acknowledged redemption exists once;
     a repeated key got the same answer; ``loyalist ledger verify`` is clean;
  7. reports the server's view (each attempt: latency of the answers 2xx/4xx and of the 503s,
     requests at the server, busy database sessions) and the customer's (latency from the
     scheduled time to the final answer), and writes them over time (per 10 s) with the
     offered, served and refused rates as ``var/bench/peak.svg``; prints ``RESULT
     peak_success=… lost=… doubled=… p99_peak_ms=… shed_503=… p99_503_ms=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import resource
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
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
ATTEMPT_TIMEOUT_S = 60.0  # a terminal that hears nothing for a minute sends again (same key)
IDLE_REUSE_S = 70.0  # the server closes a kept connection idle for 75 s (serve.KEEP_ALIVE_S)


@dataclass
class Policy:
    """How long a terminal keeps a refused transaction and how it spaces its tries."""

    backoff_cap_s: float = 30.0
    keep_s: float = 600.0
    give_up_at: float = math.inf  # monotonic: the schedule's end + the drain period

    def wait(self, retry_after: float, refusals: int, rng: random.Random) -> float:
        """Retry-After, doubled for each refusal of this transaction up to the cap, × 1–1.5."""
        base = min(self.backoff_cap_s, max(retry_after, 0.1) * 2 ** (refusals - 1))
        return max(retry_after, base) * (1.0 + 0.5 * rng.random())


@dataclass
class Result:
    """One request (one customer's transaction), from its scheduled time to its final answer."""

    op: str
    scheduled: float  # monotonic
    started: float  # when the client got to it (its event loop's lag: started - scheduled)
    first_sent: float  # when its first try left (started to first_sent: opening a connection)
    answered: float
    status: int  # final status (0: no answer)
    tries: int
    refused: int = 0  # answers 503 (overloaded) before the final one
    broken: int = 0  # tries on a connection that broke or timed out
    shed_s: float = 0.0  # time spent in tries answered 503
    slept_s: float = 0.0  # time spent waiting between tries
    last_s: float = 0.0  # time of the final try, sent to answered
    body: bytes = b""


# One try as the server saw it: (sent, answered, status); status 0 = broken or timed out.
Attempt = tuple[float, float, int]


@dataclass
class Book:
    """What the clients were told, to compare with the database afterwards."""

    orders: dict[int, int] = field(default_factory=dict)  # order id -> points earned
    order_pool: list[int] = field(default_factory=list)  # acknowledged, not yet returned
    redemptions: set[int] = field(default_factory=set)
    repeats: int = 0
    repeat_mismatch: list[str] = field(default_factory=list)


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Connections:
    """What the tills' connections cost the client and the server: open at once, opened."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.open = 0
        self.peak_open = 0
        self.opened = 0


class Till:
    """One terminal: one kept connection, one transaction at a time (the next customer waits
    in the till's queue). A try reuses the till's connection if it is under ``IDLE_REUSE_S``
    idle and still open, else opens one."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self.conn: Conn | None = None
        self.since = 0.0

    async def _get(self) -> Conn:
        conn, self.conn = self.conn, None
        if conn is not None:
            if time.monotonic() - self.since < IDLE_REUSE_S and not (
                conn[0].at_eof() or conn[1].is_closing()
            ):
                return conn
            self._close(conn)
        conn = await asyncio.open_connection("127.0.0.1", self.connections.port)
        c = self.connections
        c.open += 1
        c.opened += 1
        c.peak_open = max(c.peak_open, c.open)
        return conn

    def _close(self, conn: Conn) -> None:
        self.connections.open -= 1
        with contextlib.suppress(Exception):
            conn[1].close()

    async def request(self, raw: bytes) -> tuple[float, int, dict[str, str], bytes]:
        """(sent, status, headers, body); raises on a broken connection or a timeout."""
        conn = await self._get()
        sent = time.monotonic()
        try:
            reader, writer = conn
            writer.write(raw)
            status, head, body = await asyncio.wait_for(
                procs.read_answer(reader), timeout=ATTEMPT_TIMEOUT_S
            )
        except BaseException:
            self._close(conn)
            raise
        headers = {
            k.decode().lower(): v.decode()
            for k, v in re.findall(rb"\r\n([^:\r\n]+):\s*([^\r\n]*)", head)
        }
        if headers.get("connection", "").lower() == "close":
            self._close(conn)
        else:
            self.conn, self.since = conn, time.monotonic()
        return sent, status, headers, body

    def close(self) -> None:
        if self.conn is not None:
            self._close(self.conn)
            self.conn = None


class Traffic:
    def __init__(
        self, port: int, key: str, members: list[int], seed: int, policy: Policy | None = None
    ) -> None:
        self.connections = Connections(port)
        self.port = port
        self.key = key
        self.members = members
        self.policy = policy or Policy()
        self.rng = random.Random(seed)
        self.basket = be.Basket(random.Random(seed + 1), members)
        self.book = Book()
        self.results: list[Result] = []
        self.attempts: list[Attempt] = []
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
        body = orjson.dumps({"return_id": f"peak-{self.run}-{self.seq}", "full": True})
        return op, "POST", f"/v1/orders/{order_id}/returns", body, True

    async def send(self, scheduled: float, till: Till) -> None:
        """One customer's transaction at ``till``: tries until an answer other than 503, or
        until the policy gives it up (then its final status is the last one heard: 503 or
        0). A customer still queued at the till when the policy would give up walks away
        unsent (status 0, no try)."""
        op, method, path, body, write = self.next_request()
        idem = uuid.uuid4().hex if write else None
        raw = self._raw(method, path, body, idem)
        policy = self.policy
        status, payload, tries, refused, broken = 0, b"", 0, 0, 0
        started, first_sent, shed_s, slept_s, last_s = time.monotonic(), 0.0, 0.0, 0.0, 0.0
        if started > min(scheduled + policy.keep_s, policy.give_up_at):
            if op == "return":  # its order stays returnable by a later customer
                self.book.order_pool.append(int(path.split("/")[3]))
            self.results.append(
                Result(op, scheduled, started, started, started, 0, 0, body=b"walked away")
            )
            return
        while True:
            tries += 1
            retry_after = 1.0
            start = time.monotonic()
            try:
                sent, status, headers, payload = await till.request(raw)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                sent, status = start, 0
                broken += 1
            last_s = time.monotonic() - sent
            self.attempts.append((sent, sent + last_s, status))
            if tries == 1:
                first_sent = sent
            if status == 503:
                refused += 1
                shed_s += last_s
                with contextlib.suppress(ValueError):
                    retry_after = float(headers.get("retry-after", "1"))
            elif status != 0:
                break
            pause = policy.wait(retry_after, refused + broken, self.rng)
            now = time.monotonic()
            if now + pause > min(scheduled + policy.keep_s, policy.give_up_at):
                break
            await asyncio.sleep(pause)
            slept_s += time.monotonic() - now
        answered = time.monotonic()
        self.results.append(
            Result(
                op,
                scheduled,
                started,
                first_sent,
                answered,
                status,
                tries,
                refused,
                broken,
                shed_s,
                slept_s,
                last_s,
                payload[:300],
            )
        )
        if 200 <= status < 300:
            self._book(op, payload)
            if write and self.rng.random() < 0.03:
                await self._repeat(raw, status, payload, till)

    def _book(self, op: str, payload: bytes) -> None:
        doc = orjson.loads(payload)
        if op == "earn":
            self.book.orders[int(doc["id"])] = int(doc["points"]["earned"])
            self.book.order_pool.append(int(doc["id"]))
        elif op == "redeem":
            self.book.redemptions.add(int(doc["id"]))

    async def _repeat(self, raw: bytes, status: int, payload: bytes, till: Till) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
            _sent, again, _h, body = await till.request(raw)
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
        till = Till(traffic.connections)
        while time.monotonic() < stop:
            await traffic.send(time.monotonic(), till)
            done += 1
        till.close()

    await asyncio.gather(*(one() for _ in range(clients)))
    return done / seconds


def assign(offsets: list[float], tills: int, rng: random.Random) -> list[list[float]]:
    """Each scheduled customer goes to a till drawn at random: the tills' queues, in order."""
    queues: list[list[float]] = [[] for _ in range(tills)]
    for off in offsets:
        queues[rng.randrange(tills)].append(off)
    return queues


async def open_loop(
    traffic: Traffic, queues: list[list[float]], t0: float, lag: list[float]
) -> None:
    """Every till serves its queue: a customer steps up at the scheduled time, or when the
    customer before has been answered (or given up), whichever is later. The customers
    arrive whether or not earlier ones were answered (a peak does not wait for the server);
    latency counts from the scheduled time. ``lag`` gets the client's own event loop's lag
    (a 50 ms tick's overshoot), so a slow client is seen, not mistaken for the server."""

    async def till_line(offs: list[float]) -> None:
        till = Till(traffic.connections)
        for off in offs:
            delay = t0 + off - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await traffic.send(t0 + off, till)
        till.close()

    async def tick(stop: asyncio.Event) -> None:
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.05)
            lag.append(time.monotonic() - before - 0.05)

    stop = asyncio.Event()
    ticker = asyncio.create_task(tick(stop))
    await asyncio.gather(*(till_line(q) for q in queues if q))
    stop.set()
    await ticker


class DbSampler(threading.Thread):
    """Database sessions of the bench database busy in a statement or a transaction, every
    second: how much work the server really has in progress (admitted, not waiting)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        with (
            contextlib.suppress(Exception),
            psycopg.connect(
                be.BENCH_URL.replace("postgresql+psycopg", "postgresql"), autocommit=True
            ) as conn,
        ):
            while not self.stop.wait(1.0):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state <> 'idle' AND pid <> pg_backend_pid()"
                ).fetchone()
                self.samples.append((time.monotonic(), int(row[0]) if row else 0))


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


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values; NaN for none."""
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def success(r: Result) -> bool:
    return 200 <= r.status < 300 or r.status in OK_4XX.get(r.op, set())


def in_flight(attempts: list[Attempt], t0: float, bucket_s: float, n: int) -> list[float]:
    """Mean number of tries at the server (sent, not yet answered) per bucket."""
    busy = [0.0] * n
    for sent, answered, _status in attempts:
        a, b = sent - t0, answered - t0
        i = max(0, int(a // bucket_s))
        while i < n and i * bucket_s < b:
            lo, hi = max(a, i * bucket_s), min(b, (i + 1) * bucket_s)
            busy[i] += max(0.0, hi - lo)
            i += 1
    return [x / bucket_s for x in busy]


def chart(
    results: list[Result],
    attempts: list[Attempt],
    db_busy: list[tuple[float, int]],
    t0: float,
    path: Path,
    bucket_s: float = 10.0,
) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from loyalist.analytics.charts import line_chart

    def at(t: float) -> int:
        return max(0, int((t - t0) // bucket_s))

    end = max([r.answered for r in results] + [t0 + bucket_s])
    n = at(end) + 1
    by_sched: dict[int, list[Result]] = defaultdict(list)
    for r in results:
        by_sched[at(r.scheduled)].append(r)
    ok_lat: dict[int, list[float]] = defaultdict(list)
    shed_lat: dict[int, list[float]] = defaultdict(list)
    served = [0] * n
    shed = [0] * n
    for sent, answered, status in attempts:
        b = at(answered)
        if status == 503:
            shed[b] += 1
            shed_lat[b].append((answered - sent) * 1000)
        elif status:
            served[b] += 1
            ok_lat[b].append((answered - sent) * 1000)
    busy: dict[int, list[int]] = defaultdict(list)
    for t, k in db_busy:
        busy[at(t)].append(k)
    xs = [b * bucket_s / 60 for b in range(n)]
    nan = math.nan
    server = line_chart(
        xs,
        [
            ("2xx/4xx p50", [pct(ok_lat[b], 50) for b in range(n)]),
            ("2xx/4xx p99", [pct(ok_lat[b], 99) for b in range(n)]),
            ("503 p99", [pct(shed_lat[b], 99) for b in range(n)]),
        ],
        title="server: each try (ms)",
        x_label="minutes",
    )
    customer = line_chart(
        xs,
        [
            ("p50", [pct([(r.answered - r.scheduled) for r in by_sched[b]], 50) for b in range(n)]),
            ("p99", [pct([(r.answered - r.scheduled) for r in by_sched[b]], 99) for b in range(n)]),
        ],
        title="customer: scheduled → final answer (s)",
        x_label="minutes",
    )
    load = line_chart(
        xs,
        [
            ("offered/s", [len(by_sched[b]) / bucket_s for b in range(n)]),
            ("served/s", [served[b] / bucket_s for b in range(n)]),
            ("503/s", [shed[b] / bucket_s for b in range(n)]),
            ("at server", in_flight(attempts, t0, bucket_s, n)),
            ("DB busy", [sum(busy[b]) / len(busy[b]) if busy[b] else nan for b in range(n)]),
        ],
        title="load (per s; in progress)",
        x_label="minutes",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    panels = [
        svg.replace("width='100%'", f"x='0' y='{i * 310}' width='720' height='300'", 1)
        for i, svg in enumerate([server, customer, load])
    ]
    path.write_text(
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 720 930' width='720' "
        f"height='930'><rect width='720' height='930' fill='white'/>{''.join(panels)}</svg>\n"
    )


def phases(results: list[Result], attempts: list[Attempt], t0: float, total: float) -> list[str]:
    """Per phase of the schedule: offered, served and refused per second, a try's p99, the
    customer's p50/p99 (requests scheduled in the phase)."""
    end = max(r.answered for r in results) - t0
    cuts = [
        ("0.7 R", 0.0, 0.3 * total),
        ("ramp up", 0.3 * total, 0.4 * total),
        ("2 R", 0.4 * total, 0.6 * total),
        ("ramp down", 0.6 * total, 0.7 * total),
        ("0.7 R", 0.7 * total, total),
        ("after", total, max(end, total) + 1e-9),
    ]
    lines = []
    for name, lo, hi in cuts:
        span = hi - lo
        sched = [r for r in results if lo <= r.scheduled - t0 < hi]
        tries = [(a, b, st) for a, b, st in attempts if lo <= b - t0 < hi]
        ok = [b - a for a, b, st in tries if st not in (0, 503)]
        shed = sum(1 for _a, _b, st in tries if st == 503)
        cust = [r.answered - r.scheduled for r in sched if success(r)]
        lines.append(
            f"  {name:9} {lo / 60:4.1f}–{hi / 60:4.1f} min: offered {len(sched) / span:6.1f}/s, "
            f"served {len(ok) / span:6.1f}/s, 503 {shed / span:6.1f}/s; try p99 "
            f"{pct(ok, 99) * 1000:6,.0f} ms; customer p50 {pct(cust, 50):6.1f} s p99 "
            f"{pct(cust, 99):6.1f} s"
        )
    return lines


def dump(results: list[Result], attempts: list[Attempt], t0: float, path: Path) -> None:
    """The raw figures (times in s from the open loop's start), to look at a run again."""
    with path.with_name(path.stem + "-requests.csv").open("w") as f:
        f.write(
            "op,scheduled,started,first_sent,answered,status,tries,refused,shed_s,slept_s,last_s\n"
        )
        for r in results:
            f.write(
                f"{r.op},{r.scheduled - t0:.4f},{r.started - t0:.4f},{r.first_sent - t0:.4f},"
                f"{r.answered - t0:.4f},{r.status},{r.tries},{r.refused},{r.shed_s:.4f},"
                f"{r.slept_s:.4f},{r.last_s:.4f}\n"
            )
    with path.with_name(path.stem + "-tries.csv").open("w") as f:
        f.write("sent,answered,status\n")
        for a, b, st in attempts:
            f.write(f"{a - t0:.4f},{b - t0:.4f},{st}\n")


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) spans open at the same instant."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = now = 0
    for _t, d in events:
        now += d
        most = max(most, now)
    return most


def ms(values: Sequence[float]) -> str:
    return " ".join(f"p{q} {pct(values, q) * 1000:,.0f}" for q in (50, 90, 99)) + (
        f" max {max(values) * 1000:,.0f} ms" if values else " (none)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tills", type=int, default=600, help="terminals, one connection each")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--backoff-cap", type=float, default=30.0, help="s between a terminal's tries")
    ap.add_argument("--keep", type=float, default=600.0, help="s a terminal keeps a transaction")
    ap.add_argument("--drain", type=float, default=240.0, help="s of retries after the schedule")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--chart", default=str(ROOT / "var" / "bench" / "peak.svg"))
    args = ap.parse_args()
    procs.clean_up_on_exit()
    sys.path.insert(0, str(ROOT / "src"))
    # Hundreds of tills, a socket each, in the client and the server.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

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

    warm = Traffic(port, key, members, args.seed)
    rate = asyncio.run(closed_loop(warm, 16, 20.0))
    log(f"sustainable rate R (16 closed-loop connections, 20 s of the mix): {rate:.1f} req/s")

    total = args.minutes * 60
    offsets = schedule(rate, args.minutes)
    t0 = time.monotonic() + 0.5
    policy = Policy(args.backoff_cap, args.keep, t0 + total + args.drain)
    traffic = Traffic(port, key, members, args.seed + 7, policy)
    traffic.book = warm.book  # orders answered in the warm-up may be returned too
    log(
        f"open loop: {len(offsets)} requests over {args.minutes:g} min "
        f"(0.7 R = {0.7 * rate:.0f}/s, peak 2 R = {2 * rate:.0f}/s) at {args.tills} tills "
        f"(customers drawn to a till at random, queued there); a refused till "
        f"retries after Retry-After doubling to {args.backoff_cap:g} s (× 1–1.5), for up to "
        f"{args.keep:g} s and {args.drain:g} s past the schedule"
    )
    db_busy = DbSampler()
    db_busy.start()
    client_lag: list[float] = []
    queues = assign(offsets, args.tills, random.Random(args.seed + 13))
    asyncio.run(open_loop(traffic, queues, t0, client_lag))
    db_busy.stop.set()
    sampler.stop.set()
    procs.kill_tree(server)
    log(f"load average at the end: {os.getloadavg()}")

    results = traffic.results
    attempts = traffic.attempts
    statuses = Counter((r.op, r.status) for r in results)
    good = sum(1 for r in results if success(r))
    ok_rate = good / len(results)
    gave_up = [r for r in results if r.status in (0, 503)]
    peak_lo, peak_hi = t0 + 0.4 * total, t0 + 0.6 * total
    in_peak = [r for r in results if peak_lo <= r.scheduled <= peak_hi]
    from_sched = [r.answered - r.scheduled for r in results if success(r)]
    from_sched_peak = [r.answered - r.scheduled for r in in_peak if success(r)]
    p99_peak = pct(from_sched_peak, 99) * 1000 if from_sched_peak else math.nan
    queued = [r.started - r.scheduled for r in results]
    connecting = [r.first_sent - r.started for r in results]
    shed = [b - a for a, b, s in attempts if s == 503]
    served = [b - a for a, b, s in attempts if s not in (0, 503)]
    served_peak = [b - a for a, b, s in attempts if s not in (0, 503) and peak_lo <= a <= peak_hi]
    broken = sum(1 for _a, _b, s in attempts if s == 0)
    lost, doubled, notes = check_database(traffic.book)
    verify = subprocess.run(
        [str(VENV_BIN / "loyalist"), "ledger", "verify"],
        env={**os.environ, "LOYALIST_DATABASE_URL": be.BENCH_URL},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    chart(results, attempts, db_busy.samples, t0, Path(args.chart))
    dump(results, attempts, t0, Path(args.chart))

    log(f"answers by operation and final status: {dict(sorted(statuses.items()))}")
    for r in [r for r in results if not success(r)][:5]:
        log(f"  not a success: {r.op} {r.status} after {r.tries} tries: {r.body[:160]!r}")
    log(
        f"requests {len(results)}, success {ok_rate * 100:.3f} % (goal ≥ 99.9 %); "
        f"{len(gave_up)} given up by their till (last answer 503 or none), of which "
        f"{sum(1 for r in results if r.tries == 0)} walked away unsent"
    )
    log(
        f"tries {len(attempts)}: {len(served)} answered 2xx/4xx, {len(shed)} answered 503 "
        f"overloaded with Retry-After, {broken} broken or timed out; "
        f"{sum(r.tries > 1 for r in results)} requests needed more than one try "
        f"(most tries {max(r.tries for r in results)})"
    )
    log("by phase of the schedule (served and 503: answers in the phase):")
    for line in phases(results, attempts, t0, total):
        log(line)
    log(f"  how fast a 503 came: {ms(shed)}")
    log(f"  a try answered 2xx/4xx, from sending it: {ms(served)}")
    log(f"    at the peak (sent at 2 R): {ms(served_peak)}")
    log(f"  customer: scheduled time to the final success: {ms(from_sched)}")
    log(f"    scheduled at the peak: {ms(from_sched_peak)}")
    waiting = most_at_once([(r.scheduled, r.answered) for r in results])
    log(
        f"  transactions not yet answered, at most: {waiting}; tries at the server at once, at "
        f"most: {most_at_once([(a, b) for a, b, _s in attempts])}; busy database sessions, at "
        f"most: {max((k for _t, k in db_busy.samples), default=0)}"
    )
    log(
        f"  last answer {max(r.answered for r in results) - t0 - total:.0f} s after the "
        f"schedule's end"
    )
    log(
        f"tills: a customer queued at the till {ms(queued)}; connecting {ms(connecting)}; "
        f"connections open at once, at most {traffic.connections.peak_open} "
        f"({traffic.connections.opened} opened)"
    )
    log(f"client: its event loop's lag (a 50 ms tick's overshoot) {ms(client_lag)}")
    slow = sorted((r for r in results if success(r)), key=lambda r: r.answered - r.scheduled)
    slow = slow[len(slow) - max(1, len(slow) // 100) :]
    if slow:
        k = len(slow)
        log(
            f"  the slowest 1 % of successes ({k}, from "
            f"{(slow[0].answered - slow[0].scheduled):.1f} s), mean: "
            f"{sum(r.answered - r.scheduled for r in slow) / k:.1f} s = queued at the till "
            f"{sum(r.started - r.scheduled for r in slow) / k:.2f} + connecting "
            f"{sum(r.first_sent - r.started for r in slow) / k:.2f} + "
            f"{sum(r.refused for r in slow) / k:.1f} tries answered 503 "
            f"{sum(r.shed_s for r in slow) / k:.1f} + waits between tries "
            f"{sum(r.slept_s for r in slow) / k:.1f} + the final try "
            f"{sum(r.last_s for r in slow) / k:.1f}"
        )
    log(
        f"repeated keys: {traffic.book.repeats + warm.book.repeats}, "
        f"different answers: {len(traffic.book.repeat_mismatch)}"
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
        f"RESULT peak_success={ok_rate:.5f} lost={lost} doubled={doubled} "
        f"p99_peak_ms={p99_peak:.0f} rate_r={rate:.1f} shed_503={len(shed)} "
        f"p99_503_ms={pct(shed, 99) * 1000:.0f} ledger_verify="
        f"{'clean' if verify.returncode == 0 else 'FAILED'}"
    )
    failed = lost or doubled or verify.returncode or traffic.book.repeat_mismatch
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup()
