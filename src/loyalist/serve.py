"""The API server without the command line: ``python -m loyalist.serve HOST PORT WORKERS``.

``loyalist serve --no-worker`` hands over to this module (``os.execv``), so the supervising
process and every uvicorn worker (started by multiprocessing's *spawn*, which re-imports the
main module) import only the application, never the CLI, its commands and the analytics
they pull in (speed, issue 11: less memory per process, faster starts).
"""

from __future__ import annotations

import sys

import uvicorn


def main(argv: list[str]) -> None:
    """``HOST PORT WORKERS [LOG_LEVEL]``: given the log level (as ``loyalist serve`` does),
    the supervising process does not import the settings and pydantic (~15 MB less)."""
    host, port, workers = argv[0], int(argv[1]), int(argv[2])
    if len(argv) > 3:
        log_level = argv[3]
    else:
        from loyalist.config import get_settings

        log_level = get_settings().log_level
    uvicorn.run(
        "loyalist.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        # Workers import the whole app before they answer the supervisor's health check;
        # on a busy 2-core machine that takes longer than uvicorn's default 5 s.
        timeout_worker_healthcheck=30,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
