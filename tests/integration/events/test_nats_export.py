"""Export to NATS JetStream, against the real server at 127.0.0.1:4222 (started by
scripts/ensure-nats.sh in CI; these tests fail, never skip, when it is down).

The exporter is SIGKILLed in the middle of a batch (messages published past its checkpoint)
and started again: the stream then holds every event exactly once, in stream order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nats
import pytest
from sqlalchemy import select
from tests.integration.events.consumer_support import emit_updates, positioned

from loyalist.events import nats_export as nx
from loyalist.kit.db import Database
from loyalist.models import EventConsumer

NATS_URL = os.environ.get("LOYALIST_TEST_NATS_URL", "nats://127.0.0.1:4222")


async def _stream_messages(stream: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(subject, Nats-Msg-Id, envelope) of every message in ``stream``, in stream order."""
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, seq)
            out.append((msg.subject, (msg.headers or {})["Nats-Msg-Id"], json.loads(msg.data)))
        return out
    finally:
        await nc.close()


async def _count(stream: str) -> int:
    nc = await nats.connect(NATS_URL)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


async def _delete(stream: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def _call(fn: Any) -> Any:
    """Run ``fn`` on a thread of its own: a session-wide sync Playwright browser (the browser
    tests) leaves an event loop running on the main thread, where asyncio.run refuses."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


def _run(coro: Any) -> Any:
    return _call(lambda: asyncio.run(coro))


@pytest.fixture
def jet() -> Iterator[tuple[str, str]]:
    """A stream name and subject prefix unique to this test run (tests never share data)."""
    tag = uuid.uuid4().hex[:10]
    stream, prefix = f"LOYALIST_T{tag.upper()}", f"loyalist_t{tag}"
    yield stream, prefix
    with contextlib.suppress(Exception):
        _run(_delete(stream))


def test_the_server_is_up() -> None:
    async def ping() -> bool:
        nc = await nats.connect(NATS_URL, connect_timeout=3, max_reconnect_attempts=0)
        js = nc.jetstream()
        info = await js.account_info()
        await nc.close()
        return info is not None

    assert _run(ping()), f"NATS JetStream at {NATS_URL} is required"


def test_each_event_once_with_its_id_and_subject(
    db: Database, clock: Any, jet: tuple[str, str]
) -> None:
    stream, prefix = jet
    emit_updates(db, 7, per_tx=3)
    exporter = nx.NatsExporter(db, url=NATS_URL, stream=stream, prefix=prefix, batch=3)
    stats = _run(exporter.run(exit_when_idle=True))
    assert (stats.published, stats.duplicates, stats.batches) == (7, 0, 3)
    msgs = _run(_stream_messages(stream))
    want = positioned(db)
    assert [(m[1], m[2]["sequence"]) for m in msgs] == want
    assert {m[0] for m in msgs} == {f"{prefix}.member.updated"}
    assert all(m[2]["id"] == m[1] and m[2]["type"] == "member.updated" for m in msgs)
    # running again: nothing new; moving the checkpoint back republishes, JetStream drops
    assert (
        _run(
            nx.NatsExporter(db, url=NATS_URL, stream=stream, prefix=prefix).run(exit_when_idle=True)
        ).published
        == 0
    )
    with db.transaction() as s:
        row = s.scalar(select(EventConsumer).where(EventConsumer.name == f"nats:{stream}"))
        assert row is not None and row.position == 7
        row.position = 2
    again = _run(
        nx.NatsExporter(db, url=NATS_URL, stream=stream, prefix=prefix).run(exit_when_idle=True)
    )
    assert (again.published, again.duplicates) == (0, 5)
    assert _run(_count(stream)) == 7


def _checkpoint(db: Database, stream: str) -> int:
    with db.transaction() as s:
        got = s.scalar(select(EventConsumer.position).where(EventConsumer.name == f"nats:{stream}"))
        return int(got or 0)


def _exporter(db: Database, stream: str, prefix: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOYALIST_DATABASE_URL": db.url}
    return subprocess.Popen(
        [
            sys.executable, "-m", "loyalist.cli.main", "stream", "nats",
            "--url", NATS_URL, "--stream", stream, "--prefix", prefix, "--batch", "400", *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_killed_mid_batch_and_restarted_holds_each_event_once(
    db: Database, clock: Any, jet: tuple[str, str]
) -> None:
    stream, prefix = jet
    emit_updates(db, 3000, per_tx=500)
    total = len(positioned(db))
    mid_batch = False
    for _attempt in range(5):
        proc = _exporter(db, stream, prefix)
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                published = _run(_count(stream)) if _exists(stream) else 0
                done = _checkpoint(db, stream)
                if published > done and published < total:
                    break  # messages out past the checkpoint: the middle of a batch
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
                time.sleep(0.01)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        published, done = _run(_count(stream)), _checkpoint(db, stream)
        if done < published < total:
            mid_batch = True
            break
    assert mid_batch, "the exporter was never caught between publishing and its checkpoint"
    restarted = _exporter(db, stream, prefix, "--exit-when-idle")
    out, _ = restarted.communicate(timeout=300)
    assert restarted.returncode == 0, out
    found = re.search(rb"exported to \S+: (\d+) published, (\d+) already held", out)
    assert found, out
    # the restart published the rest and found the killed batch's messages already held
    assert int(found[1]) == total - published
    assert int(found[2]) == published - done
    msgs = _run(_stream_messages(stream))
    assert [(m[1], m[2]["sequence"]) for m in msgs] == positioned(db)  # once each, in order
    assert len({m[1] for m in msgs}) == total
    assert _checkpoint(db, stream) == total


def _exists(stream: str) -> bool:
    async def check() -> bool:
        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().stream_info(stream)
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    return _run(check())


def test_the_worker_poller_exports_when_a_nats_url_is_set(
    db: Database, clock: Any, jet: tuple[str, str], monkeypatch: Any
) -> None:
    from loyalist import bootstrap
    from loyalist.config import get_settings

    stream, prefix = jet
    monkeypatch.setenv("LOYALIST_NATS_URL", NATS_URL)
    monkeypatch.setenv("LOYALIST_NATS_STREAM", stream)
    monkeypatch.setenv("LOYALIST_NATS_PREFIX", prefix)
    get_settings.cache_clear()
    try:
        pollers = bootstrap.pollers()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    export = next(p for p in pollers if isinstance(p, nx.EmbeddedNatsExport))
    assert len([p for p in bootstrap.pollers() if isinstance(p, nx.EmbeddedNatsExport)]) == 0
    emit_updates(db, 3)
    try:
        assert _call(lambda: export(db)) == 3
        assert _call(lambda: export(db)) == 0
    finally:
        _call(export.close)
    assert [m[1] for m in _run(_stream_messages(stream))] == [e for e, _p in positioned(db)]
