"""``loyalist serve --no-worker`` hands over to ``python -m loyalist.serve``, which imports
the app and uvicorn only, never the CLI or analytics (issue 11: memory per process)."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from typing import Any, ClassVar

import pytest
from tests.server import free_port
from typer.testing import CliRunner

from loyalist import serve
from loyalist.cli.main import app


def test_serve_without_worker_execs_the_lean_module(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    calls: list[tuple[str, list[str]]] = []

    def fake_execv(path: str, argv: list[str]) -> None:
        calls.append((path, argv))
        raise SystemExit(0)

    monkeypatch.setenv("LOYALIST_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setattr("os.execv", fake_execv)
    from loyalist.config import get_settings

    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(
            app, ["serve", "--no-worker", "--host", "127.0.0.1", "--port", "8123", "--workers", "3"]
        )
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 0, r.output
    argv = [sys.executable, "-m", "loyalist.serve", "127.0.0.1", "8123", "3", "info"]
    assert calls == [(sys.executable, argv)]


def test_lean_module_runs_the_app_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda target, **kw: seen.update(target=target, **kw))
    serve.main(["127.0.0.1", "8124", "1"])
    assert seen["target"] == "loyalist.serve:served_app"
    assert seen["timeout_keep_alive"] == 75  # a till's kept connection outlives a Retry-After
    assert (seen["factory"], seen["host"], seen["port"], seen["workers"]) == (
        True,
        "127.0.0.1",
        8124,
        1,
    )


class FakeSupervisor:
    """Stands in for uvicorn's Multiprocess: notes what it was given, and the workers'
    malloc setting and whether the resource tracker was turned off before it."""

    seen: ClassVar[list[tuple[Any, list[socket.socket]]]] = []
    before: ClassVar[list[tuple[str | None, int]]] = []
    no_tracker_calls: ClassVar[list[None]] = []

    def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
        self.seen.append((config, sockets))
        self.before.append((os.environ.get("MALLOC_ARENA_MAX"), len(self.no_tracker_calls)))

    def run(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _supervisor_side_effects(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve.main sets the workers' MALLOC_ARENA_MAX and turns multiprocessing's resource
    tracker off in its own process: here, in the test's, both are undone afterwards (the
    real effect on the processes is tests/e2e/test_serve_processes.py's)."""
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    FakeSupervisor.before.clear()
    FakeSupervisor.no_tracker_calls.clear()
    monkeypatch.setattr(
        serve, "no_resource_tracker", lambda: FakeSupervisor.no_tracker_calls.append(None)
    )


def test_several_workers_each_listen_on_a_socket_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """issue 11: uvicorn's one shared socket let one worker take a whole burst of
    keep-alive connections; each worker now listens on its own SO_REUSEPORT socket."""
    FakeSupervisor.seen.clear()
    monkeypatch.setattr("uvicorn.supervisors.Multiprocess", FakeSupervisor)
    port = free_port()
    serve.main(["127.0.0.1", str(port), "2", "warning"])
    [(config, [hold])] = FakeSupervisor.seen
    assert FakeSupervisor.before == [("2", 1)]  # set before the workers start
    assert (config.app, config.factory, config.workers, config.log_level) == (
        "loyalist.serve:served_app",
        True,
        2,
        "warning",
    )
    try:
        assert isinstance(hold, serve.PerWorkerSocket)
        assert hold.getsockname() == ("127.0.0.1", port)
        assert hold.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert hold.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0  # not listening
        # what each spawned worker receives: a fresh socket on the same address
        mine = [pickle.loads(pickle.dumps(hold)) for _ in range(2)]
        try:
            assert {s.fileno() for s in mine}.isdisjoint({hold.fileno()})
            for s in mine:
                assert type(s) is socket.socket
                assert s.getsockname() == ("127.0.0.1", port)
                assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
                s.listen()
            # both listen on the port at once; connections go to one or the other
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
        finally:
            for s in mine:
                s.close()
    finally:
        hold.close()


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_taken_port_fails_at_once(monkeypatch: pytest.MonkeyPatch, reuse_port: bool) -> None:
    """Also when the server on it set SO_REUSEPORT too: two servers never share a port."""
    FakeSupervisor.seen.clear()
    monkeypatch.setattr("uvicorn.supervisors.Multiprocess", FakeSupervisor)
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse_port))
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as exit_:
            serve.main(["127.0.0.1", str(taken.getsockname()[1]), "2", "warning"])
    assert exit_.value.code == serve.STARTUP_FAILURE
    assert FakeSupervisor.seen == []
    assert FakeSupervisor.no_tracker_calls == []


def test_lean_module_imports_neither_cli_nor_analytics() -> None:
    code = (
        "import sys, loyalist.serve, loyalist.app; loyalist.app.create_app; "
        "print(sorted(m for m in sys.modules if m.startswith(('loyalist.cli', "
        "'loyalist.analytics', 'typer'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_lean_module_given_the_log_level_reads_no_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda target, **kw: seen.update(target=target, **kw))
    serve.main(["127.0.0.1", "8125", "1", "warning"])
    assert (seen["port"], seen["workers"], seen["log_level"]) == (8125, 1, "warning")
    code = "import sys, loyalist.serve; print('loyalist.config' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the supervising process stays small


def test_server_process_does_not_import_httpx() -> None:
    """httpx imports its command line (rich, pygments: ~20 MB per worker); the webhook
    sender and the message adapters import it when they first send."""
    code = (
        "import sys, loyalist.app; loyalist.app.create_app(); "
        "print(sorted(m for m in ('httpx', 'rich', 'pygments') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# What a fresh API worker must not load at start (issue 11: server RSS ≤ 300 MB). Each is
# imported where it is first used: QR codes (segno), planning schedules (croniter and its
# dateutil), console and member pages (jinja2, markupsafe, babel), YAML documents (yaml),
# a phone number that is not a plain mainland mobile (phonenumbers), an email (smtplib).
NOT_AT_START = (
    "segno",
    "croniter",
    "dateutil",
    "jinja2",
    "markupsafe",
    "babel",
    "yaml",
    "phonenumbers",
    "smtplib",
    "loyalist.jobs.scheduler",
)


def test_server_process_imports_no_page_qr_cron_yaml_or_phone_library_at_start() -> None:
    code = (
        "import sys, loyalist.serve, loyalist.app; loyalist.app.create_app(); "
        f"print(sorted(m for m in {NOT_AT_START!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_what_the_worker_leaves_out_is_loaded_when_first_used() -> None:
    """The lazy imports still work: a QR code, a rendered page, a YAML document, a
    non-mainland number and the schedules, each in a fresh process that started lean."""
    code = (
        "import sys, loyalist.app; loyalist.app.create_app(); "
        f"before = sorted(m for m in {NOT_AT_START!r} if m in sys.modules); "
        "from loyalist.referral import domain as referral; "
        "assert referral.qr_png('X').startswith(b'\\x89PNG'); "
        "assert referral.qr_svg('X').startswith('<svg'); "
        "from loyalist.member_web.endpoints import _qr; "
        "assert (_qr('12345678') or '').startswith('data:image/png;base64,'); "
        "from loyalist.member_web import web; "
        "assert web.Formats('en', __import__('zoneinfo').ZoneInfo('UTC'), 'CNY').points(1234)"
        " == '1,234'; "
        "assert web._environment().from_string('{{ x }}').render(x='<b>') == '&lt;b&gt;'; "
        "from loyalist.kit.documents import as_yaml; assert as_yaml({'a': 1}) == 'a: 1\\n'; "
        "from loyalist.member import domain; "
        "assert domain.normalise_phone('+44 20 7946 0958') == '+442079460958'; "
        "from loyalist.jobs import registry; assert registry.schedules(); "
        f"print(before, sorted(m for m in {NOT_AT_START!r} if m not in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # all loaded now but what no call above needs (no email sent; the scheduler is the
    # job worker's, never the API server's)
    assert out.stdout.strip() == "[] ['loyalist.jobs.scheduler', 'smtplib']"


def test_a_worker_builds_the_app_then_freezes_it_out_of_the_collector(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import gc

    from uvicorn.importer import import_from_string

    from loyalist.config import get_settings

    assert import_from_string(serve.FACTORY) is serve.served_app
    monkeypatch.setenv("LOYALIST_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    get_settings.cache_clear()
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        application = serve.served_app()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the application's routes, schemas, modules: all of it
        assert application.title == "Loyalist API"
        assert len(gc.get_objects()) < frozen  # left to the collector: only what came after
    finally:
        gc.unfreeze()
        get_settings.cache_clear()


def test_spawned_workers_start_no_resource_tracker() -> None:
    """A spawned process still starts and answers; no tracker process is started for it."""
    code = (
        "import multiprocessing as mp, sys\n"
        "from multiprocessing import resource_tracker\n"
        "from loyalist import serve\n"
        "serve.no_resource_tracker()\n"
        "if __name__ == '__main__':\n"
        "    ctx = mp.get_context('spawn')\n"
        "    parent, child = ctx.Pipe()\n"
        "    p = ctx.Process(target=child.send, args=('pong',))\n"
        "    p.start()\n"
        "    print(parent.recv(), resource_tracker._resource_tracker._pid)\n"
        "    p.join()\n"
        "    print(p.exitcode)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["pong", "None", "0"]


def test_a_resource_tracker_already_running_is_left_alone() -> None:
    code = (
        "from multiprocessing import resource_tracker\n"
        "from loyalist import serve\n"
        "resource_tracker.ensure_running()\n"
        "t = resource_tracker._resource_tracker\n"
        "before = (t._fd, t._pid)\n"
        "serve.no_resource_tracker()\n"
        "print(before == (t._fd, t._pid), t._pid is not None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["True", "True"]
