"""benchmarks/earn_flame.py sums py-spy's samples by the library their innermost frame
runs in (issue 11): the attribution must be right, or the profile explains nothing."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import earn_flame


def test_frames_are_attributed_to_their_library_or_package() -> None:
    g = earn_flame.group_of
    assert g("Session.execute (sqlalchemy/orm/session.py:2488)") == "SQLAlchemy"
    assert g("execute (psycopg/cursor.py:97)") == "psycopg"
    assert g("app (fastapi/routing.py:301)") == "FastAPI/Starlette"
    assert g("record (loyalist/order/service.py:237)") == "loyalist.order"
    assert g("run (/work/x/src/loyalist/kit/db.py:252)") == "loyalist.kit"
    assert g("wait (threading.py:327)") == "Python standard library"
    assert g("run (asyncio/runners.py:118)") == "Python standard library"
    assert g("f (/v/lib/python3.11/site-packages/pydantic_core/core.py:1)") == "pydantic"


def test_samples_are_summed_by_the_innermost_frame() -> None:
    raw = "\n".join(
        [
            'process 1:"serve";main (a.py:1);record (loyalist/order/service.py:9) 5',
            'process 1:"serve";main (a.py:1);execute (sqlalchemy/engine/base.py:3) 7',
            "record (loyalist/order/service.py:9);flush (sqlalchemy/orm/session.py:1) 2",
            "not a sample line",
        ]
    )
    counts = earn_flame.by_group(raw)
    assert counts == {"loyalist.order": 5, "SQLAlchemy": 9}
