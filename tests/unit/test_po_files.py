"""Every translation catalogue in the package parses strictly: an entry that lost its msgstr
in a merge is read by the lenient parser as an empty translation and goes unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.pofile import read_po

import loyalist

CATALOGUES = sorted(Path(loyalist.__file__).parent.glob("**/locale/*/LC_MESSAGES/messages.po"))


def test_the_catalogues_are_found() -> None:
    assert len(CATALOGUES) == 6


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: str(p.relative_to(p.parents[4])))
def test_a_catalogue_parses_strictly(path: Path) -> None:
    with path.open("rb") as fh:
        catalogue = read_po(fh, abort_invalid=True)
    ids = [m.id for m in catalogue if m.id]
    assert len(ids) == len(set(ids))
