"""The API server without the command line: ``python -m loyalist.serve HOST PORT WORKERS``.

``loyalist serve --no-worker`` hands over to this module (``os.execv``), so the supervising
process and every uvicorn worker (started by multiprocessing's *spawn*, which re-imports the
main module) import only the application, never the CLI, its commands and the analytics
they pull in (speed, issue 11: less memory per process, faster starts).

With several workers, each listens on a socket of its own bound with ``SO_REUSEPORT``, and
the kernel spreads new connections over the workers by a hash of their addresses. uvicorn's
own way, every worker accepting from one shared socket, lets whichever worker wakes first
take a whole burst: 16 keep-alive clients connecting at once often all landed on one of two
workers, which then ran every request under its one GIL while the other stayed idle
(issue 11, "Wall clock under 16 clients"). Without ``SO_REUSEPORT`` (Windows) the shared
socket is kept.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    from fastapi import FastAPI

# uvicorn's exit status when the server cannot start (uvicorn.config.STARTUP_FAILURE)
STARTUP_FAILURE = 3
# The application factory every worker calls (uvicorn's ``factory=True``).
FACTORY = "loyalist.serve:served_app"
# How long an idle kept connection stays open (uvicorn's default: 5 s). A till sends a
# transaction every few seconds to minutes, and one refused with 503 waits its Retry-After
# (1-30 s) before sending it again: at 5 s most of those tries opened a new connection, a
# TCP handshake and a parser on both sides, paid when the server is busiest (bench_peak,
# session 12). 75 s is what proxies commonly keep (nginx's keepalive_timeout).
KEEP_ALIVE_S = 75


def served_app() -> FastAPI:
    """The application, built in a worker, with everything it imported and built moved out
    of the garbage collector's sight (``gc.freeze``).

    A worker holds some 200,000 objects once the application is imported (modules, routes,
    schemas, compiled statements), none of them ever garbage. Left to the collector, each of
    its rare full collections walks all of them while the worker answers nothing: 440–550 ms
    on this 2-core machine under load, a stall of every request in flight on that worker
    (speed, issue 11: the latency tail). Frozen, a full collection walks only what was
    allocated since. Objects frozen are still freed when their last reference goes; only a
    reference cycle among them would outlive the process, and these live as long as it."""
    from loyalist.app import create_app

    app = create_app()
    gc.collect()
    gc.freeze()
    return app


class PerWorkerSocket(socket.socket):
    """The supervisor's hold on the address: bound with ``SO_REUSEPORT`` (a taken port
    fails here, at once) but never listening, so the kernel gives it no connections.
    Handed to a worker (pickled by multiprocessing's spawn), it arrives as a fresh socket
    bound to the same address, which that worker alone listens on; when the worker exits,
    its socket closes and the kernel stops giving it connections."""

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, tuple[int, str, int]]:
        host, port = self.getsockname()[:2]
        return (reuse_port_socket, (int(self.family), str(host), int(port)))


def reuse_port_socket(family: int, host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not yet listening."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def address_hold(host: str, port: int) -> PerWorkerSocket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # A plain bind first: a port another server listens on fails here, even when that
    # server also set SO_REUSEPORT (two servers must not share a port by accident).
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    sock = PerWorkerSocket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


# glibc's malloc arenas per worker process: by default up to 8 per core, one taken by each
# thread that allocates while another holds an arena's lock (the thread pool under load),
# each keeping its freed pages. Two is the usual production setting for threaded Python
# servers; an operator's own MALLOC_ARENA_MAX is kept.
WORKER_MALLOC_ARENAS = "2"


def no_resource_tracker() -> None:
    """multiprocessing's *spawn* starts a resource tracker before the first worker: a
    process of its own (a whole interpreter, ~12 MB resident) that unlinks the named
    semaphores and shared memory blocks a process leaves behind. Neither this supervisor
    nor its workers create any (the health-check pipes are plain pipes; the bulk import's
    processes use *fork*, whose locks are never named), so it is given a descriptor of
    ``/dev/null`` to report to instead, and none is started."""
    from multiprocessing import resource_tracker

    tracker = resource_tracker._resource_tracker
    if getattr(tracker, "_fd", False) is None and getattr(tracker, "_pid", False) is None:
        tracker._fd = os.open(os.devnull, os.O_WRONLY)  # type: ignore[attr-defined]


def main(argv: list[str]) -> None:
    """``HOST PORT WORKERS [LOG_LEVEL]``: given the log level (as ``loyalist serve`` does),
    the supervising process does not import the settings and pydantic (~15 MB less)."""
    host, port, workers = argv[0], int(argv[1]), int(argv[2])
    if len(argv) > 3:
        log_level = argv[3]
    else:
        from loyalist.config import get_settings

        log_level = get_settings().log_level
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": log_level,
        "access_log": False,
        "timeout_keep_alive": KEEP_ALIVE_S,
        # Workers import the whole app before they answer the supervisor's health check;
        # on a busy 2-core machine that takes longer than uvicorn's default 5 s.
        "timeout_worker_healthcheck": 30,
    }
    if workers < 2 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(FACTORY, **options)
        return
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(FACTORY, **options)  # configures logging
    try:
        hold = address_hold(host, port)
    except OSError as exc:
        print(f"cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    os.environ.setdefault("MALLOC_ARENA_MAX", WORKER_MALLOC_ARENAS)  # the workers' environment
    no_resource_tracker()
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[hold]).run()


if __name__ == "__main__":
    main(sys.argv[1:])
