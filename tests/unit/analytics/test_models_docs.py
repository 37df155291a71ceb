"""Every Python example in docs/analytics-models.md runs as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "analytics-models.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_examples() -> None:
    assert len(_blocks()) >= 4


def test_the_examples_run_and_print_the_published_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in _blocks():
            exec(compile(block, str(DOC), "exec"), namespace)
    text = out.getvalue()
    assert "'r': 0.243, 'alpha': 4.414, 'a': 0.793, 'b': 2.426" in text
    assert "-9582.4 True" in text
    assert "[1.2259" in text
    assert "'p': 6.25, 'q': 3.74, 'gamma': 15.44" in text
    assert "-9594.98" in text
    assert "False no customer made a repeat purchase" in text
    assert str(namespace["svg"]).startswith("<svg")
