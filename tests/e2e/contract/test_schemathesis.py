"""Schemathesis against the running app: every operation answers what its OpenAPI entry
documents (status codes, content types, headers, response schemas), positive and negative
data, unauthenticated and wrongly authenticated calls, stateful sequences, and no input
gives a 5xx.

A real server on a free port (like tests/e2e/test_crash_recovery.py) over the standard world
with members, orders, a return and a redemption; the number of examples is bounded so the
run takes a couple of minutes on two cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.e2e.contract.world import seed
from tests.server import ROOT, Server

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = int(os.environ.get("LOYALIST_CONTRACT_EXAMPLES", "15"))
INTERPRETER_BUG = "SystemError: AST constructor recursion depth mismatch"


def test_every_operation_conforms_to_the_openapi_document(db_url: str, tmp_path: Path) -> None:
    world = seed(db_url)
    server = Server(db_url, tmp_path / "server.log")
    server.start(timeout=240)  # the import is slow on a busy two-core machine
    deadline = time.monotonic() + 540
    try:
        for _attempt in range(2):
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "schemathesis.cli",
                    "--config-file",
                    str(CONFIG),
                    "--no-color",
                    "run",
                    f"{server.url}/openapi.json",
                    "--checks",
                    "all",
                    "--mode",
                    "all",
                    "--phases",
                    "examples,coverage,fuzzing,stateful",
                    "--max-examples",
                    str(MAX_EXAMPLES),
                    "--seed",
                    "20261206",
                    "--workers",
                    "2",
                    "--header",
                    f"Authorization: Bearer {world.keys['hq']}",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
            )
            # CPython 3.11.7's AST validation can fail in the test tool itself when its two
            # worker threads build strategies at once ("SystemError: AST constructor
            # recursion depth mismatch", an interpreter bug, not an answer of ours): once,
            # the run is repeated; any other outcome stands.
            if run.returncode == 0 or INTERPRETER_BUG not in run.stdout + run.stderr:
                break
    finally:
        server.stop()
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-12_000:]
    assert "No issues found" in out or " passed" in out, out[-3_000:]
    assert server.errors_logged() == "", server.errors_logged()[-3_000:]
