"""benchmarks/earn_flame.py sums py-spy's samples by the library their innermost frame
runs in (issue 11): the attribution must be right, or the profile explains nothing."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import earn_flame
import flame_svg


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


SUP = 'process 1:"python -m loyalist.serve"'
WORKER = 'process 7:"python -c from multiprocessing.spawn import spawn_main; spawn_main(fd=3)"'
REC = "record (loyalist/order/service.py:{})"
STACKS = "\n".join(
    [
        # a recursive Loyalist function: counted once per stack
        f"{SUP};{WORKER};run (loyalist/kit/db.py:1);{REC.format(9)};{REC.format(12)};"
        "Session.flush (sqlalchemy/orm/session.py:4);execute (psycopg/cursor.py:2) 3",
        f"{SUP};{WORKER};run (loyalist/kit/db.py:1);{REC.format(10)};"
        "Session.flush (sqlalchemy/orm/session.py:5) 2",
        f"{SUP};{WORKER};run (loyalist/kit/db.py:1);_store (loyalist/order/service.py:30);"
        "Session.execute (sqlalchemy/orm/session.py:6);"
        "process_bind_param (loyalist/kit/types.py:3);uuid4 (uuid.py:1) 4",
        f"{SUP};{WORKER};run (loyalist/kit/db.py:1);dumps (json/__init__.py:1) 1",
        f"{SUP};{WORKER};_worker (threading.py:9);"
        "_go (<sqlalchemy generated _go() wrapper for sqlalchemy.orm.x>:2) 1",
        f"{SUP};main (loyalist/serve.py:99);sleep (asyncio/tasks.py:1) 1",
    ]
)


def test_generated_sqlalchemy_code_and_process_frames_are_grouped() -> None:
    g = earn_flame.group_of
    assert g("_go (<sqlalchemy generated _go() wrapper for sqlalchemy.orm.x>:2)") == "SQLAlchemy"
    assert (
        g("__init__ (<sqlalchemy generated __init__ for class loyalist.models.order.Order>:4)")
        == "SQLAlchemy"
    )
    assert g(WORKER) == "process"


def test_inclusive_share_counts_each_stack_once_per_function() -> None:
    stacks = flame_svg.parse(STACKS)
    counts = earn_flame.inclusive(stacks)
    assert counts == {
        "run (loyalist/kit/db.py)": 10,
        "record (loyalist/order/service.py)": 5,  # 3 (recursing) + 2, not 3 * 2 + 2
        "_store (loyalist/order/service.py)": 4,
        "process_bind_param (loyalist/kit/types.py)": 4,
        "main (loyalist/serve.py)": 1,
    }


def test_orm_time_goes_to_the_loyalist_function_that_called_in() -> None:
    stacks = flame_svg.parse(STACKS)
    callers = earn_flame.orm_by_caller(stacks)
    assert callers == {
        # innermost Loyalist frame outside the ORM: the recursing record, both stacks
        "record (loyalist/order/service.py)": {"Session.flush (sqlalchemy/orm/session.py)": 5},
        # our own column type called back by the ORM stays under the ORM call
        "_store (loyalist/order/service.py)": {"Session.execute (sqlalchemy/orm/session.py)": 4},
        "(no Loyalist caller)": {
            "_go (<sqlalchemy generated _go() wrapper for sqlalchemy.orm.x>)": 1
        },
    }


def test_worker_samples_are_those_of_the_supervisors_children() -> None:
    stacks = flame_svg.parse(STACKS)
    assert earn_flame.process_of(next(iter(stacks))) == 7
    assert earn_flame.worker_samples(stacks, supervisor=1) == 11
    assert earn_flame.worker_samples(stacks, supervisor=7) == 1
