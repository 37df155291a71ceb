"""Wall-clock stack sampler for ``benchmarks/earn_waits.py`` (never imported by Loyalist).

``earn_waits.py`` puts this directory on the server's ``PYTHONPATH`` and sets
``LOYALIST_WALL_SAMPLE_DIR``; every Python process of the server (uvicorn's supervisor and
its spawned workers) then runs a daemon thread that, every ``LOYALIST_WALL_SAMPLE_MS``
milliseconds, takes every other thread's Python stack (``sys._current_frames``) and its
kernel state (``/proc/self/task/<tid>/stat``: ``R`` running or waiting for a core, ``S``/``D``
sleeping: a socket, a lock, the GIL). The counts (one line per thread state + stack,
collapsed: ``state;frame;frame… count``) are rewritten to ``wall-<pid>.txt`` every second,
so a killed server still leaves them.
"""

from __future__ import annotations

import os

_DIR = os.environ.get("LOYALIST_WALL_SAMPLE_DIR")


def _start(out_dir: str) -> None:
    import sys
    import threading
    import time
    from collections import Counter

    interval = float(os.environ.get("LOYALIST_WALL_SAMPLE_MS", "10")) / 1000
    counts: Counter[str] = Counter()
    path = os.path.join(out_dir, f"wall-{os.getpid()}.txt")

    def state_of(native_id: int | None) -> str:
        if native_id is None:
            return "?"
        try:
            with open(f"/proc/self/task/{native_id}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            return "?"
        return raw[raw.rindex(b")") + 2 : raw.rindex(b")") + 3].decode()

    def loop() -> None:
        me = threading.get_ident()
        last_dump = time.monotonic()
        while True:
            time.sleep(interval)
            natives = {t.ident: (t.native_id, t.name) for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                native, name = natives.get(ident, (None, "?"))
                stack: list[str] = []
                f = frame
                while f is not None and len(stack) < 80:
                    code = f.f_code
                    stack.append(
                        f"{os.path.basename(code.co_filename)}:{code.co_name}:{f.f_lineno}"
                    )
                    f = f.f_back
                stack.reverse()
                kind = "loop" if name == "MainThread" else "thread"
                counts[f"{state_of(native)};{kind};" + ";".join(stack)] += 1
            now = time.monotonic()
            if now - last_dump >= 1.0:
                last_dump = now
                tmp = path + ".tmp"
                with open(tmp, "w") as out:
                    for key, n in counts.items():
                        out.write(f"{key} {n}\n")
                os.replace(tmp, path)

    threading.Thread(target=loop, name="wall-sampler", daemon=True).start()


if _DIR:
    _start(_DIR)
