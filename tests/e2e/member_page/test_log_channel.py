"""The development log channel in a real server process: with no other channel set,
the sign-in code shows in the server's output (``loyalist serve`` configures only
uvicorn's loggers; the channel must make itself seen), with the phone masked."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
from tests.e2e.member_page.conftest import PHONE, seed
from tests.server import running_server

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
LINE = re.compile(r"signin_code to \+86138\*\*\*\*5678: 您的登录验证码是 (\d{6})")


def test_the_code_shows_in_the_server_log(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    log = tmp_path / "server.log"
    with running_server(db_url, log) as server, httpx.Client(base_url=server.url) as http:
        form = http.get("/m/signin", headers={"Accept-Language": "zh-CN"})
        csrf = CSRF.search(form.text)
        assert csrf is not None
        sent = http.post("/m/signin", data={"csrf": csrf.group(1), "phone": PHONE})
        assert sent.status_code == 200
        deadline = time.monotonic() + 10
        while not (found := LINE.search(log.read_text(errors="replace"))):
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        done = http.post(
            "/m/signin/code",
            data={"csrf": csrf.group(1), "phone": "+86" + PHONE, "code": found.group(1)},
        )
        assert done.status_code == 303 and done.headers["location"] == "/m"
        assert http.get("/m").status_code == 200
    text = log.read_text(errors="replace")
    assert "for development only" in text
    assert PHONE not in text
