"""docs/quickstart-api.md stays true: its shell commands run, in order, against a real
server on a fresh database (the current test backend), and every output it shows is the
output they give.

How the page is read: each ```bash block is run (one bash session per part, ``set -euo
pipefail``); a ```json or ```text block right after it is that block's expected output —
JSON compared as data, text compared line by line. The block that starts the server is
the one place the test steps in: it starts its own server on a free port and sets BASE to
it, and the page's database URL is replaced by the test database's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.server import cli, running_server

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "quickstart-api.md"
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.timeout(300)


@dataclass
class Step:
    script: str
    expected: tuple[str, str] | None  # (language, text)
    line: int


def steps(text: str) -> list[Step]:
    out: list[Step] = []
    blocks = [
        (m.group(1), m.group(2), text[: m.start()].count("\n") + 1)
        for m in re.finditer(r"^```(\w+)\n(.*?)^```$", text, re.S | re.M)
    ]
    for i, (lang, body, line) in enumerate(blocks):
        if lang != "bash":
            continue
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        expected = (nxt[0], nxt[1]) if nxt and nxt[0] in ("json", "text") else None
        out.append(Step(body, expected, line))
    return out


def run_part(parts: list[Step], cwd: Path, env: dict[str, str]) -> list[str]:
    """Run the steps in one bash session; the stdout of each, in order."""
    marker = "@@quickstart-step@@"
    script = ["set -euo pipefail"]
    for step in parts:
        script += [f"echo '{marker}'", step.script]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    outputs = done.stdout.split(marker + "\n")
    assert outputs[0] == ""
    return outputs[1:]


def check(step: Step, output: str) -> None:
    if step.expected is None:
        return
    lang, want = step.expected
    where = f"docs/quickstart-api.md, the block at line {step.line}"
    if lang == "json":
        assert json.loads(output) == json.loads(want), f"{where}:\n{output}"
    else:
        got = [ln.rstrip() for ln in output.strip().splitlines()]
        assert got == [ln.rstrip() for ln in want.strip().splitlines()], f"{where}:\n{output}"


def test_every_command_of_the_quickstart_gives_the_documented_output(
    db_url: str, tmp_path: Path
) -> None:
    all_steps = steps(DOC.read_text(encoding="utf-8"))
    assert len(all_steps) >= 12
    assert sum(1 for s in all_steps if s.expected) >= 10, "most commands show their output"
    serve = [i for i, s in enumerate(all_steps) if "loyalist serve" in s.script]
    assert len(serve) == 1, "one block starts the server"
    assert all_steps[serve[0]].script.splitlines() == [
        "loyalist serve &",
        "BASE=http://127.0.0.1:8000",
    ]
    setup, rest = all_steps[: serve[0]], all_steps[serve[0] + 1 :]

    # The page's database is a SQLite file under var/; the test's database takes its place.
    url_lines = [
        ln
        for s in setup
        for ln in s.script.splitlines()
        if ln.startswith("export LOYALIST_DATABASE_URL=")
    ]
    assert url_lines == ['export LOYALIST_DATABASE_URL="sqlite:///$PWD/var/quickstart.db"']
    for s in setup:
        s.script = s.script.replace(url_lines[0], f"export LOYALIST_DATABASE_URL='{db_url}'")

    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "LOYALIST_RUN_SCHEDULER": "false",
    }
    env.pop("LOYALIST_DATABASE_URL", None)
    for step, output in zip(setup, run_part(setup, tmp_path, env), strict=True):
        check(step, output)

    with running_server(db_url, tmp_path / "server.log") as server:
        env = {**env, "LOYALIST_DATABASE_URL": db_url, "BASE": server.url}
        for step, output in zip(rest, run_part(rest, tmp_path, env), strict=True):
            check(step, output)
        assert server.errors_logged() == ""

    verify = cli(db_url, "ledger", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_the_page_is_read_as_intended() -> None:
    """The reader of the page: bash blocks and the output block after each."""
    page = "\n".join(
        [
            "```bash",
            "echo hi",
            "```",
            "",
            "```json",
            '{"a": 1}',
            "```",
            "```bash",
            "true",
            "```",
            "```yaml",
            "x: 1",
            "```",
        ]
    )
    got: list[Any] = [(s.script, s.expected, s.line) for s in steps(page)]
    assert got == [("echo hi\n", ("json", '{"a": 1}\n'), 1), ("true\n", None, 8)]
    check(Step("", ("json", '{"a": 1}'), 1), '{ "a" : 1 }\n')
    with pytest.raises(AssertionError):
        check(Step("", ("json", '{"a": 1}'), 1), '{"a": 2}')
    with pytest.raises(AssertionError):
        check(Step("", ("text", "x\ny"), 1), "x\nz\n")
