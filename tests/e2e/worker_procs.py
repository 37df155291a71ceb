"""Worker processes in the fault tests: wait until one runs before stopping it gracefully."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def wait_until_running(proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> None:
    """Wait until ``loyalist worker`` prints ``worker <name> on <database>``: its SIGTERM
    handler is installed just before. A worker restarted moments before the end of a test may
    still be importing, and a SIGTERM then kills it (exit -15) instead of stopping it."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        if b"worker " in log.read_bytes():
            return
        time.sleep(0.1)
