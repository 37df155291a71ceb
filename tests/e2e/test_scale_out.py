"""Scale out (issue 11 item 4): two API processes behind a local load balancer and two job
workers on one database. 16 clients write through the balancer; one API process and one
worker are SIGKILLed mid-load; clients retry with their Idempotency-Keys (the balancer sends
them to the survivor), the killed process is started again. Every write applies exactly
once, every acknowledged answer is replayed unchanged, every consumer handles every event
once, and ``loyalist ledger verify`` is clean."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.e2e.test_crash_recovery import MEMBERS, WRITES, Pool, Write, send, writes
from tests.e2e.worker_procs import wait_until_running
from tests.server import ROOT, Server, cli, free_port, prepare

from loyalist.kit.db import Database
from loyalist.models import (
    EventConsumer,
    EventReceipt,
    IdempotencyRecord,
    Job,
    LedgerEntry,
    Order,
    OutboxEvent,
)

pytestmark = pytest.mark.timeout(600)

KILL_AFTER = 80


class Balancer:
    """A TCP round-robin balancer on a free port (a thread with its own event loop): each
    client connection goes to the next backend that accepts it, as a proxy would."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._next = itertools.cycle(range(len(backends)))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.served = [0] * len(backends)

    def start(self) -> None:
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)
        self.server = fut.result(timeout=10)

    async def _serve(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for _ in range(len(self.backends)):
            i = next(self._next)
            try:
                upstream = await asyncio.open_connection("127.0.0.1", self.backends[i])
                self.served[i] += 1
                break
            except OSError:
                continue
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def _worker(db_url: str, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "loyalist.cli.main", "worker", "--concurrency", "2"],
        env={**os.environ, "LOYALIST_DATABASE_URL": db_url, "LOYALIST_RUN_SCHEDULER": "0"},
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    out.close()
    return proc


def test_two_api_processes_and_two_workers_survive_a_kill_of_one_of_each(
    db_url: str, tmp_path: Path
) -> None:
    world = prepare(db_url, [])
    servers = [Server(db_url, tmp_path / f"api-{i}.log") for i in range(2)]
    for s in servers:
        s.start(timeout=240)  # two processes importing the app on a busy 2-core machine
    balancer = Balancer([s.port for s in servers])
    balancer.start()
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    workers = [_worker(db_url, log) for log in logs]
    try:
        client = Pool(balancer, world.keys["hq"])  # type: ignore[arg-type]
        member_ids = []
        for i in range(MEMBERS):
            r = client().post("/v1/members", json={"external_id": f"scale-member-{i}"})
            assert r.status_code == 201, r.text
            member_ids.append(r.json()["id"])
        todo = writes(member_ids)
        acked = threading.Semaphore(0)

        def first_pass(w: Write) -> None:
            if send(client(), w):
                acked.release()

        with ThreadPoolExecutor(16) as ex:
            futures = [ex.submit(first_pass, w) for w in todo]
            for _ in range(KILL_AFTER):
                assert acked.acquire(timeout=120), "no answers before the kill"
            servers[0].kill()
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(timeout=30)
            for f in futures:
                f.result()
        assert all(balancer.served), balancer.served  # both API processes took requests
        servers[0].start(timeout=240)  # the killed process comes back
        workers[0] = _worker(db_url, logs[0])

        def retry(w: Write) -> None:
            for _ in range(5):
                if send(client(), w):
                    return
                time.sleep(0.2)
            raise AssertionError(f"{w.key}: no answer after the kill")

        with ThreadPoolExecutor(16) as ex:
            list(ex.map(retry, todo))
        client.close()
        assert servers[1].errors_logged() == ""

        # Every event is handled by the dashboard consumer once, by one worker or the other.
        db = Database(db_url)
        try:
            deadline = time.monotonic() + 180
            while True:
                with db.transaction() as s:
                    top = s.scalar(select(func.max(OutboxEvent.position)))
                    unpositioned = s.scalar(
                        select(func.count())
                        .select_from(OutboxEvent)
                        .where(OutboxEvent.position.is_(None))
                    )
                    seen = s.scalar(
                        select(EventConsumer.position).where(
                            EventConsumer.name == "dashboard.rollup"
                        )
                    )
                if not unpositioned and top is not None and (seen or 0) >= top:
                    break
                assert time.monotonic() < deadline, (top, unpositioned, seen)
                time.sleep(0.5)
            with db.transaction() as s:
                doubled = s.execute(
                    select(EventReceipt.consumer, EventReceipt.event_id)
                    .group_by(EventReceipt.consumer, EventReceipt.event_id)
                    .having(func.count() > 1)
                ).all()
                assert doubled == []
                dead = s.scalar(
                    select(func.count()).select_from(Job).where(Job.state.in_(["dead"]))
                )
                assert dead == 0
                orders = s.scalar(select(func.count()).select_from(Order))
                assert orders == sum(1 for w in todo if w.path == "/v1/orders")
                earns = s.scalar(
                    select(func.count())
                    .select_from(LedgerEntry)
                    .where(LedgerEntry.kind.in_(["earn", "adjust"]))
                )
                assert earns == WRITES
                assert s.scalar(select(func.count()).select_from(IdempotencyRecord)) == WRITES
        finally:
            db.dispose()
    finally:
        for proc, log in zip(workers, logs, strict=True):
            if proc.poll() is None:
                wait_until_running(proc, log)
                proc.terminate()
                proc.wait(timeout=60)
        balancer.stop()
        for s in servers:
            s.stop()

    for w in todo:
        # answered before the kill: the retry replays the very same answer
        assert [a[0] for a in w.answers] in ([201], [201, 201]), (w.key, w.answers)
        if len(w.answers) == 2:
            (_, b1, r1), (_, b2, r2) = w.answers
            assert (b1, r1, r2) == (b2, False, True), w.key
    res = cli(db_url, "ledger", "verify")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"ledger verified: {MEMBERS} account(s)" in res.stdout
