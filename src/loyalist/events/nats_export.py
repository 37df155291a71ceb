"""Export the event stream to NATS JetStream.

Every event is published, in stream order, to the subject ``<prefix>.<type>`` (default
``loyalist.member.created`` …) with the envelope of ``GET /v1/events`` as JSON and the
header ``Nats-Msg-Id`` = the event id. The exporter's checkpoint is a row in
``event_consumer`` named ``nats:<stream>`` (so its lag shows with the consumers'); it moves
only after JetStream has acknowledged every message of a batch. A process killed in the
middle of a batch publishes that batch again when it restarts, and JetStream drops the
copies it already holds because their message ids repeat within the stream's duplicate
window (:data:`DUPLICATE_WINDOW_S`; restart within it). So the stream holds each event once.

The stream is created when missing (subjects ``<prefix>.>``, file storage, duplicate window
as above); an existing stream is used as it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError
from sqlalchemy import select, update

from loyalist.events import service as events
from loyalist.events.consumers import ensure_checkpoint
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database
from loyalist.models import EventConsumer, OutboxEvent

log = logging.getLogger("loyalist.events.nats")

DEFAULT_URL = "nats://127.0.0.1:4222"
DEFAULT_STREAM = "LOYALIST"
DEFAULT_PREFIX = "loyalist"
DEFAULT_BATCH = 500
DUPLICATE_WINDOW_S = 2 * 3600  # a restart within two hours never duplicates
ACK_TIMEOUT_S = 10.0


def checkpoint_name(stream: str) -> str:
    return f"nats:{stream}"


@dataclass
class ExportStats:
    published: int = 0
    duplicates: int = 0  # JetStream already held them (a batch published again)
    batches: int = 0


def _next_batch(db: Database, name: str, limit: int) -> list[tuple[int, str, str, bytes]]:
    def fn(s: Any) -> list[tuple[int, str, str, bytes]]:
        ensure_checkpoint(s, name)
        cp = int(s.scalar(select(EventConsumer.position).where(EventConsumer.name == name)))
        rows = s.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.position > cp)
            .order_by(OutboxEvent.position)
            .limit(limit)
        )
        return [
            (
                int(ev.position or 0),
                ev.event_id,
                ev.type,
                json.dumps(events.as_dict(ev), ensure_ascii=False, separators=(",", ":")).encode(),
            )
            for ev in rows
        ]

    return db.run(fn)


def _save_checkpoint(db: Database, name: str, position: int, n: int) -> None:
    def fn(s: Any) -> None:
        s.execute(
            update(EventConsumer)
            .where(EventConsumer.name == name, EventConsumer.position < position)
            .values(
                position=position,
                handled=EventConsumer.handled + n,
                updated_at=utcnow(),
            )
        )

    db.run(fn)


async def ensure_stream(js: Any, stream: str, prefix: str) -> None:
    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=stream,
                subjects=[f"{prefix}.>"],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_S,
                description="Loyalist domain events (one message per event)",
            )
        )


class NatsExporter:
    """Publishes the stream to JetStream; :meth:`run_once` exports what is pending."""

    def __init__(
        self,
        db: Database,
        *,
        url: str = DEFAULT_URL,
        stream: str = DEFAULT_STREAM,
        prefix: str = DEFAULT_PREFIX,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.db = db
        self.url = url
        self.stream = stream
        self.prefix = prefix
        self.batch = batch
        self.name = checkpoint_name(stream)
        self.stats = ExportStats()
        self._nc: Any = None
        self._js: Any = None

    async def connect(self) -> None:
        if self._nc is not None and self._nc.is_connected:
            return
        self._nc = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=3)
        self._js = self._nc.jetstream()
        await ensure_stream(self._js, self.stream, self.prefix)

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None

    async def export_batch(self) -> int:
        """Publish the next batch and move the checkpoint; returns the events exported."""
        await self.connect()
        rows = await asyncio.to_thread(_next_batch, self.db, self.name, self.batch)
        if not rows:
            return 0
        for _position, event_id, type_, body in rows:
            ack = await self._js.publish(
                f"{self.prefix}.{type_}",
                body,
                timeout=ACK_TIMEOUT_S,
                stream=self.stream,
                headers={"Nats-Msg-Id": event_id},
            )
            if ack.duplicate:
                self.stats.duplicates += 1
            else:
                self.stats.published += 1
        await asyncio.to_thread(_save_checkpoint, self.db, self.name, rows[-1][0], len(rows))
        self.stats.batches += 1
        return len(rows)

    async def run(
        self,
        *,
        stop: Callable[[], bool] = lambda: False,
        exit_when_idle: bool = False,
        idle_wait_s: float = 0.2,
    ) -> ExportStats:
        """Export until ``stop()`` (or, with ``exit_when_idle``, until nothing is pending)."""
        await self.connect()
        try:
            while not stop():
                n = await self.export_batch()
                if n:
                    continue
                if exit_when_idle:
                    break
                await asyncio.sleep(idle_wait_s)
        finally:
            await self.close()
        return self.stats


class EmbeddedNatsExport:
    """A worker poller (``LOYALIST_NATS_URL`` set): exports pending events each tick on an
    event loop of its own, keeping the connection between ticks."""

    def __init__(self, url: str, stream: str = DEFAULT_STREAM, prefix: str = DEFAULT_PREFIX):
        self.url, self.stream, self.prefix = url, stream, prefix
        self._loop = asyncio.new_event_loop()
        self._exporter: NatsExporter | None = None
        self._lock = threading.Lock()

    def __call__(self, db: Database) -> int:
        with self._lock:
            if self._exporter is None or self._exporter.db is not db:
                self._exporter = NatsExporter(
                    db, url=self.url, stream=self.stream, prefix=self.prefix
                )
            try:
                return self._loop.run_until_complete(self._exporter.export_batch())
            except Exception:
                self._exporter = None  # reconnect next tick; the checkpoint did not move
                raise

    def close(self) -> None:
        """Drain the connection and close the loop (the worker is stopping)."""
        with self._lock:
            if self._exporter is not None:
                self._loop.run_until_complete(self._exporter.close())
                self._exporter = None
            self._loop.close()
