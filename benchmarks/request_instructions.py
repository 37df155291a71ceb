"""Python instructions per HTTP request (valgrind), through the real ASGI app.

The yardstick of the HTTP side of the earning path (issue 11): ``POST /v1/orders`` with an
Idempotency-Key and the bench's API key, and ``GET /v1/members/{id}`` (balance, tier,
progress), sent as ASGI requests into the application ``create_app`` builds — every
middleware, exception handler, dependency (API key, unknown query parameters), body
validation and answer encoding — without sockets (uvicorn's own parsing, in C with
httptools, is not counted). Beside each it measures the service alone (``service-post``:
``run_idempotent`` → ``order.record_view`` → the answer's JSON form, as
``earn_instructions.py``; ``service-get``: ``member.profile_view`` in a read-only
transaction), so the difference is what HTTP costs around the service.

Each figure is ``valgrind --tool=cachegrind`` instructions of a run of ``--base`` + ``--n``
requests minus a run of ``--base`` requests, divided by ``--n``: start-up, imports and
warm-up cancel out. PostgreSQL's own work is another process and is not counted.

Data: the earning benchmark's (``bench_earn.build_data``: org, demo programme, members,
an API key) in ``--db`` (default ``hl_req``), built when missing or with ``--rebuild``.

``--modes redeem,service-redeem``: ``POST /v1/redemptions`` of bench_redeem_read's reward
(``upsize``, 500 points) with an Idempotency-Key, and ``reward.redeem_view`` under
``run_idempotent`` alone (``reward.redeem_json`` where the source has it: the answer's JSON
form as the endpoint builds it); the data then also gets bench_redeem_read's grant (points
to spend, the reward redeemed once by every member).

Usage: .venv/bin/python benchmarks/request_instructions.py [--n 40] [--base 10]
       [--modes post,service-post,get,service-get,redeem,service-redeem] [--src DIR]
       [--db NAME] [--rebuild]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
WARM_UP = 20
MODES = ("post", "service-post", "get", "service-get")
#: ``POST /v1/redemptions`` of bench_redeem_read's reward, and its service alone (not default)
REDEEM_MODES = ("redeem", "service-redeem")


class AsgiClient:
    """One HTTP/1.1 request at a time into an ASGI app, the way uvicorn hands it over: the
    body in one message, then ``receive`` waits until the answer is sent."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        done = asyncio.Event()
        status = 0
        chunks: list[bytes] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        if body:
            raw.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8000"), *raw],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        await self.app(scope, receive, send)
        return status, b"".join(chunks)


def _key_and_members(url: str) -> tuple[str, list[int]]:
    from loyalist.access import service as access
    from loyalist.kit.db import Database

    db = Database(url)
    try:
        with db.transaction() as s:
            key = access.create_key(s, name="request-instructions", scope="hq").secret
        members = db.run(lambda s: [int(x) for x in s.scalars(_sql("SELECT id FROM member"))])
    finally:
        db.dispose()
    return key, members


def _sql(text: str) -> Any:
    from sqlalchemy import text as sql_text

    return sql_text(text)


def run(url: str, mode: str, n: int) -> None:
    """Warm up, then send ``n`` requests of ``mode`` (the part that differs between runs)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_earn
    from loyalist.app import create_app
    from loyalist.config import Settings
    from loyalist.idempotency.service import Answer, run_idempotent
    from loyalist.kit.actor import SYSTEM
    from loyalist.kit.db import Database
    from loyalist.member import service as members_service
    from loyalist.reward import service as reward_service
    from loyalist.reward.schemas import RedemptionCreate

    key, members = _key_and_members(url)
    db = Database(url)
    app = create_app(Settings(database_url=url, run_scheduler=False), db)
    client = AsgiClient(app)
    basket = bench_earn.Basket(random.Random(11), members)
    pick = random.Random(5)
    tag = uuid.uuid4().hex[:8]
    auth = {"authorization": f"Bearer {key}"}

    async def post(i: int) -> None:
        body = basket.order(f"req-{tag}-{i}")
        headers = {**auth, "content-type": "application/json", "idempotency-key": uuid.uuid4().hex}
        status, answer = await client.request("POST", "/v1/orders", headers, body)
        assert status == 201, answer[:500]

    async def service_post(i: int) -> None:
        bench_earn.record_in_process(db, basket.order(f"req-{tag}-{i}"))

    async def get(i: int) -> None:
        member = pick.choice(members)
        status, answer = await client.request("GET", f"/v1/members/{member}", auth)
        assert status == 200, answer[:500]

    async def service_get(i: int) -> None:
        member = pick.choice(members)
        view = db.run(lambda s: members_service.profile_view(s, SYSTEM, member), read_only=True)
        view.model_dump_json(by_alias=True)

    async def redeem(i: int) -> None:
        body = f'{{"member_id": {pick.choice(members)}, "reward": "upsize"}}'.encode()
        headers = {**auth, "content-type": "application/json", "idempotency-key": uuid.uuid4().hex}
        status, answer = await client.request("POST", "/v1/redemptions", headers, body)
        assert status == 201, answer[:500]

    # the answer's JSON form as the endpoint builds it: redeem_json where the source has
    # it (branch redeemlean), else the response model dumped
    redeem_json = getattr(reward_service, "redeem_json", None)

    async def service_redeem(i: int) -> None:
        body = f'{{"member_id": {pick.choice(members)}, "reward": "upsize"}}'.encode()
        data = RedemptionCreate.model_validate_json(body)
        if redeem_json is None:
            bench_earn.write_in_process(
                db, "/v1/redemptions", body, lambda s: reward_service.redeem_view(s, SYSTEM, data)
            )
            return
        run_idempotent(
            db,
            principal="bench",
            key=uuid.uuid4().hex,
            method="POST",
            path="/v1/redemptions",
            body=body,
            work=lambda s: Answer(201, redeem_json(s, SYSTEM, data)),
        )

    one = {
        "post": post,
        "service-post": service_post,
        "get": get,
        "service-get": service_get,
        "redeem": redeem,
        "service-redeem": service_redeem,
    }[mode]

    async def main() -> None:
        for i in range(WARM_UP + n):
            await one(i)

    asyncio.run(main())
    db.dispose()


def _child_args(mode: str, url: str, n: int) -> list[str]:
    return ["--child", f"{mode}:{n}", "--url", url]


def _ensure_data(db: str, rebuild: bool, redeem: bool) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_earn

    exists = bench_earn.psql(f"SELECT 1 FROM pg_database WHERE datname = '{db}'")
    if not exists or rebuild:
        bench_earn.recreate_database(db)
        bench_earn.build_data(500, 42, PG + db)
    if redeem and bench_earn.psql("SELECT count(*) FROM redemption", db) == "0":
        # bench_redeem_read's steady state: points to spend, the reward redeemed once each
        import bench_redeem_read

        ids = [int(x) for x in bench_earn.psql("SELECT id FROM member ORDER BY id", db).split()]
        bench_redeem_read.grant_points(PG + db, ids)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--db", default="hl_req")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--base", type=int, default=10)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--src", type=Path, default=ROOT / "src")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        mode, n = args.child.split(":")
        run(args.url, mode, int(n))
        return 0
    sys.path.insert(0, str(args.src))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import procs

    modes = args.modes.split(",")
    _ensure_data(args.db, args.rebuild, redeem=bool(set(modes) & set(REDEEM_MODES)))
    url = PG + args.db
    print(f"src: {args.src}  load average {os.getloadavg()[0]:.1f}")
    per: dict[str, float] = {}
    for mode in modes:
        child = functools.partial(_child_args, mode, url)
        _low, _high, per[mode] = procs.instructions_per_step(
            Path(__file__), args.src, child, args.base, args.n
        )
        print(f"{mode:13s} instructions/request: {per[mode] / 1e6:6.2f} M")
    for verb in ("post", "get", "redeem"):
        if verb in per and f"service-{verb}" in per:
            http = per[verb] - per[f"service-{verb}"]
            print(f"{verb:4s} HTTP around the service: {http / 1e6:6.2f} M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
