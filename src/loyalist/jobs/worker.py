"""The worker loop: schedules, pollers (stream consumers …), then due jobs.

``loyalist worker`` runs it in the foreground; ``loyalist serve`` runs one in a thread of the
server process unless ``--no-worker``. Each loop it enqueues the schedules' latest
occurrences, calls every poller (tick functions from ``bootstrap.pollers()``, e.g. the
event consumers), buries jobs whose worker died after their last attempt, then claims up to
``concurrency`` due jobs and runs them (in threads when ``concurrency`` > 1); when nothing
was due it sleeps ``poll_interval`` seconds. ``stop()`` (SIGTERM) lets the jobs in hand
finish, claims nothing more and returns.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from loyalist.jobs import queue
from loyalist.jobs.scheduler import Scheduler
from loyalist.kit import wake
from loyalist.kit.db import Database

log = logging.getLogger("loyalist.worker")

Poller = Callable[[Database], int]

SCHEDULE_EVERY_S = 15.0
BURY_EVERY_S = 30.0
# Jobs claimed per thread at a time: fewer claim transactions, leases still short-lived.
CLAIM_PER_THREAD = 4


def worker_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class WorkerStats:
    done: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0
    ticks: int = 0


@dataclass
class Worker:
    db: Database
    pollers: Sequence[Poller] = ()
    concurrency: int = 1
    poll_interval: float = 1.0
    lease_s: float = queue.DEFAULT_LEASE_S
    name: str = field(default_factory=worker_name)
    stats: WorkerStats = field(default_factory=WorkerStats)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._scheduler = Scheduler()
        self._next_schedule = 0.0
        self._next_bury = 0.0

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _housekeeping(self) -> None:
        mono = time.monotonic()
        if mono >= self._next_schedule:
            self._next_schedule = mono + SCHEDULE_EVERY_S
            try:
                self._scheduler.enqueue_due(self.db)
            except Exception:
                log.exception("enqueueing scheduled jobs failed")
        if mono >= self._next_bury:
            self._next_bury = mono + BURY_EVERY_S
            try:
                queue.bury_exhausted(self.db)
            except Exception:
                log.exception("burying exhausted jobs failed")

    def _poll(self) -> int:
        work = 0
        for poller in self.pollers:
            if self._stop.is_set():
                break
            try:
                work += poller(self.db)
            except Exception:
                log.exception("poller %r failed", poller)
        return work

    def _account(self, state: str) -> None:
        if state == "done":
            self.stats.done += 1
        elif state == "failed":
            self.stats.retried += 1
        elif state == "dead":
            self.stats.dead += 1
        else:
            self.stats.lost += 1

    def tick(self, pool: ThreadPoolExecutor | None = None) -> int:
        """One loop: housekeeping, pollers, one claim of due jobs. Returns work done."""
        self.stats.ticks += 1
        self._housekeeping()
        work = self._poll()
        if self._stop.is_set():
            return work
        try:
            batch = queue.claim(
                self.db, self.name, limit=self.concurrency * CLAIM_PER_THREAD, lease_s=self.lease_s
            )
        except Exception:
            log.exception("claiming jobs failed")
            return work
        if pool is None or len(batch) <= 1:
            for c in batch:
                self._account(self._execute(c))
        else:
            for state in pool.map(self._execute, batch):
                self._account(state)
        return work + len(batch)

    def _execute(self, claimed: queue.Claimed) -> str:
        try:
            return queue.execute(self.db, claimed, self.name)
        except Exception:  # e.g. the database went away while recording a failure
            log.exception("job %s: could not be run or recorded", claimed.id)
            return "lost"  # its lease expires and it is claimed again

    def run(self, *, once: bool = False) -> WorkerStats:
        """Loop until :meth:`stop` (or, with ``once``, until nothing is due)."""
        log.info("worker %s started (concurrency %s)", self.name, self.concurrency)
        pool = ThreadPoolExecutor(self.concurrency) if self.concurrency > 1 else None
        # PostgreSQL: woken by other processes' commits (LISTEN/NOTIFY), see kit.wake
        listening = threading.Event()
        if not once:
            wake.listen(self.db.engine.url, listening)
        try:
            while not self._stop.is_set():
                try:
                    work = self.tick(pool)
                except Exception:  # never let the loop die (embedded in serve, nobody sees it)
                    log.exception("worker loop failed; retrying")
                    work = 0
                if work:
                    continue
                if once:
                    break
                wake.wait(self._stop, self.poll_interval)  # early when work appears in-process
        finally:
            listening.set()  # the listener thread ends (its stop event)
            if pool is not None:
                pool.shutdown(wait=True)
            log.info("worker %s stopped: %s", self.name, self.stats)
        return self.stats

    def start_thread(self) -> threading.Thread:
        """Run in a daemon thread (the embedded worker of ``loyalist serve``)."""
        thread = threading.Thread(target=self.run, name="loyalist-worker", daemon=True)
        thread.start()
        return thread
