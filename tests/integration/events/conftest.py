"""The stream fixture of the consumer tests: the effect table, and every consumer a test
registers is unregistered after it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.integration.events.consumer_support import make_effect_table

from loyalist.events import consumers
from loyalist.kit.db import Database


@pytest.fixture
def stream(db: Database, clock: Any) -> Iterator[Database]:
    make_effect_table(db)
    registered = {c.name for c in consumers.registered()}
    yield db
    for c in consumers.registered():
        if c.name not in registered:
            consumers.unregister(c.name)
