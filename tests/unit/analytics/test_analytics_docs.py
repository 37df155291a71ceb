"""docs/analytics.md: its Python examples and its file-based command lines run as written."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loyalist.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "analytics.md").read_text(encoding="utf-8")


def _blocks(info: str) -> list[str]:
    return re.findall(rf"```{info}\n(.*?)```", DOC, flags=re.S)


@pytest.fixture
def in_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a scratch directory that sees the repository's test data."""
    (tmp_path / "tests").symlink_to(ROOT / "tests", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_python_example_runs(in_copy: Path) -> None:
    blocks = _blocks("python")
    assert len(blocks) == 4
    out = io.StringIO()
    for code in blocks:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "docs/analytics.md", "exec"), {})
    printed = out.getvalue()
    assert "1 3\n" in printed
    assert "[2] unparsable or empty date in 'occurred_at' (rows 2; 1 in total)\n" in printed
    assert (in_copy / "rfm.xlsx").stat().st_size > 0
    html = (in_copy / "cdnow-report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "客户分析报告" in html
    # the database example is shown, not run (it needs a platform database)
    assert len(_blocks("python skip")) == 1


def _command_lines() -> list[str]:
    text = "\n".join(_blocks("sh"))
    joined = re.sub(r"\\\n\s*", " ", text)
    return [ln.strip() for ln in joined.splitlines() if ln.strip().startswith("loyalist analyze")]


def test_command_lines_on_files_of_the_repository_run(in_copy: Path) -> None:
    runnable = [c for c in _command_lines() if "tests/data/" in c]
    assert len(runnable) == 2
    for line in runnable:
        args = shlex.split(line)[1:]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (line, result.stdout, result.stderr)
    html = (in_copy / "cdnow.html").read_text(encoding="utf-8")
    assert "Lifetime value and churn risk" in html and "Skipped" not in html
