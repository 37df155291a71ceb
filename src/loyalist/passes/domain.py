"""Pass terms as dates, pure: where a purchase starts and ends in the programme's zone.

A term covers whole local days: from ``starts_on`` through ``ends_on``; it ends at the local
midnight after the period (``starts_on`` + years/months), which is ``ends_on`` + 1 day. A
purchase made while a term runs (a renewal) starts on that term's end day, so no day is lost
or paid twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from loyalist.kit.localtime import add_months

EXPIRING_DAYS = 7  # pass.expiring goes out this many days before a term's end


@dataclass(frozen=True, slots=True)
class Term:
    starts_on: date
    ends_on: date  # the last local day covered (inclusive)

    @property
    def end_day(self) -> date:
        """The local day at whose midnight the term ends."""
        return self.ends_on + timedelta(days=1)


def term(first_day: date, years: int, months: int) -> Term:
    """The term starting on ``first_day`` for the period (years and months)."""
    end = add_months(first_day, years * 12 + months)
    return Term(first_day, end - timedelta(days=1))


def months_held(starts_on: date, today: date) -> int:
    """Whole months since ``starts_on`` (0 in the first month): the monthly coupon's index."""
    n = 0
    while add_months(starts_on, n + 1) <= today:
        n += 1
    return n


def refund_last_day(purchase_day: date, refund_days: int) -> date:
    """The last local day a purchase can be refunded: the purchase day + ``refund_days``."""
    return purchase_day + timedelta(days=refund_days)
