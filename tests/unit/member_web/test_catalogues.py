"""Every text the member page and the member messages show exists in Chinese and
English, and the catalogues hold nothing the code no longer says."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import loyalist.member_web
import loyalist.messaging
from loyalist.messaging.templates import TEMPLATES

PAGE = Path(loyalist.member_web.__file__).parent
MESSAGING = Path(loyalist.messaging.__file__).parent


def _used_on_the_page() -> set[str]:
    found = extract_from_dir(
        str(PAGE),
        [("**.py", "python"), ("templates/**.html", "jinja2")],
        keywords={"_": None},
        options_map={"templates/**.html": {"trim_blocks": "true", "lstrip_blocks": "true"}},
    )
    return {msg if isinstance(msg, str) else msg[0] for _f, _l, msg, _c, _x in found}


def _catalogue(root: Path, locale: str) -> dict[str, str]:
    with (root / "locale" / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        cat = read_po(fh, locale=locale)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string and not m.fuzzy}


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_the_member_page_is_fully_translated(locale: str) -> None:
    used = _used_on_the_page()
    assert len(used) > 100  # the extraction really read the templates
    have = _catalogue(PAGE, locale)
    assert sorted(used - have.keys()) == []
    assert sorted(have.keys() - used) == []


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_member_messages_are_fully_translated(locale: str) -> None:
    used = {text for pair in TEMPLATES.values() for text in pair}
    assert sorted(used - _catalogue(MESSAGING, locale).keys()) == []


def _params(text: str) -> list[str]:
    return sorted(part.split(")")[0] for part in text.split("%(")[1:])


def test_chinese_texts_keep_their_parameters() -> None:
    for root in (PAGE, MESSAGING):
        for msgid, text in _catalogue(root, "zh_CN").items():
            assert _params(text) == _params(msgid), msgid
            assert any("\u4e00" <= ch <= "\u9fff" for ch in text), msgid
