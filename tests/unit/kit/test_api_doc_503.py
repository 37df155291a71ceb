"""docs/api.md's error table names every code a 503 can carry, with Retry-After: the
database's ``service_unavailable`` and admission control's ``overloaded`` (a client that
reads the table must know both, and that both may be retried)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
from tests.aio import run_in_fresh_loop

from loyalist.errors import LoyalistError
from loyalist.kit.admission import Admission

API_DOC = Path(__file__).parents[3] / "docs" / "api.md"


def _row(status: int) -> str:
    rows = [line for line in API_DOC.read_text().splitlines() if line.startswith(f"| {status} |")]
    assert len(rows) == 1, f"docs/api.md's error table has {len(rows)} rows for {status}"
    return rows[0]


def _overloaded_answer() -> httpx.Response:
    answers: list[httpx.Response] = []

    async def scenario() -> None:
        release = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        admission = Admission(app, limit=1, wait_s=0.1, max_waiting=0)
        transport = httpx.ASGITransport(app=admission)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            held = asyncio.create_task(c.get("/v1/members/1"))
            while admission.in_progress < 1:
                await asyncio.sleep(0.01)
            refused = await c.post("/v1/orders", json={})
            release.set()
            await held
            answers.append(refused)

    run_in_fresh_loop(scenario())
    return answers[0]


def _subclasses(cls: type[LoyalistError]) -> list[type[LoyalistError]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def test_the_503_row_names_every_503_code_and_retry_after() -> None:
    row = _row(503)
    documented = set(re.findall(r"`([a-z_]+)`", row))
    answer = _overloaded_answer()
    assert answer.status_code == 503 and "retry-after" in answer.headers
    codes = {json.loads(answer.content)["code"]}
    codes |= {c.code for c in _subclasses(LoyalistError) if c.status == 503}
    assert codes >= {"overloaded", "service_unavailable"}
    assert codes <= documented, f"503 codes missing from docs/api.md: {codes - documented}"
    assert "Retry-After" in row and "retry_after" in row
