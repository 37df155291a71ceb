"""Rendering for the member page: Jinja2 templates, gettext per request, locale formats.

Jinja2 and Babel are imported when the first page is rendered, not when the API server
starts: a worker that only answers ``/v1`` never loads them (memory, issue 11).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from loyalist.kit.clock import as_utc
from loyalist.kit.i18n import translations
from loyalist.kit.money import minor_factor

if TYPE_CHECKING:
    from jinja2 import Environment

Day = date  # the type, under a name the methods below do not shadow
HERE = Path(__file__).parent
LOCALE_DIRS = (HERE / "locale",)


@functools.cache
def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def gettext_for(locale: str) -> Callable[..., str]:
    t = translations(locale, LOCALE_DIRS)

    def _(message: str, **params: Any) -> str:
        text = t.gettext(message)
        return text % params if params else text

    return _


@dataclass(frozen=True)
class Formats:
    """Numbers, money and dates in the reader's locale and the programme's time zone."""

    locale: str
    tz: ZoneInfo
    currency: str

    @property
    def babel_locale(self) -> str:
        return "zh_Hans_CN" if self.locale == "zh_CN" else "en"

    def points(self, n: int) -> str:
        from babel.numbers import format_decimal

        return format_decimal(n, locale=self.babel_locale)

    def signed(self, n: int) -> str:
        # A real minus sign reads better than a hyphen next to a number.
        body = self.points(abs(n))
        return f"+{body}" if n > 0 else (f"−{body}" if n < 0 else body)

    def money(self, minor: int) -> str:
        """``¥1,280`` for whole amounts, ``¥12.50`` otherwise (CLDR symbol and grouping
        of the reader's locale: ``CN¥1,280`` in English)."""
        from babel.numbers import format_currency

        factor = minor_factor(self.currency)
        major = Decimal(minor) / factor
        if minor % factor == 0:
            return format_currency(
                major,
                self.currency,
                format="¤#,##0",
                currency_digits=False,
                locale=self.babel_locale,
            )
        return format_currency(major, self.currency, locale=self.babel_locale)

    def percent(self, rate: Decimal) -> str:
        from babel.numbers import format_percent

        return format_percent(rate, locale=self.babel_locale)

    def date(self, value: datetime | date) -> str:
        from babel.dates import format_date

        d = as_utc(value).astimezone(self.tz).date() if isinstance(value, datetime) else value
        return format_date(d, format="medium", locale=self.babel_locale)

    def time(self, value: datetime) -> str:
        from babel.dates import format_time

        return format_time(as_utc(value), format="short", tzinfo=self.tz, locale=self.babel_locale)

    def day_key(self, value: datetime) -> Day:
        """The programme-local day of an instant (to group lines by day)."""
        return as_utc(value).astimezone(self.tz).date()

    def datetime(self, value: datetime) -> str:
        from babel.dates import format_datetime

        return format_datetime(
            as_utc(value), format="short", tzinfo=self.tz, locale=self.babel_locale
        )


def render(name: str, context: dict[str, Any]) -> str:
    return _environment().get_template(name).render(**context)
