"""The texts of the messages we send, in Chinese and English (gettext catalogues)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from loyalist.kit.i18n import DEFAULT, SUPPORTED, translations

LOCALE_DIR = Path(__file__).parent / "locale"

# template name -> (subject msgid, body msgid); bodies use %(name)s parameters.
TEMPLATES: dict[str, tuple[str, str]] = {
    "signin_code": (
        "Your sign-in code",
        "Your sign-in code is %(code)s. It expires in %(minutes)s minutes. "
        "Never share it with anyone.",
    ),
    "points_awarded": (
        "Points added to your account",
        "%(points)s points were added to your account: %(reason)s",
    ),
    "notice": ("A message from the programme", "Notice: %(text)s"),
    "points_expiring": (
        "Your points are expiring soon",
        "%(points)s of your points expire on %(date)s. Use them before then.",
    ),
    "recommendations": ("Picked for you", "You may like: %(recommendations)s"),
}


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


class UnknownTemplate(KeyError):
    pass


def render(template: str, params: Mapping[str, str | int], locale: str) -> Rendered:
    try:
        subject_id, body_id = TEMPLATES[template]
    except KeyError:
        raise UnknownTemplate(template) from None
    t = translations(locale if locale in SUPPORTED else DEFAULT, (LOCALE_DIR,))
    return Rendered(t.gettext(subject_id), t.gettext(body_id) % dict(params))
