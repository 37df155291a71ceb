"""Errors raised by the analytics package.

Every error carries a stable ``code`` and, where rows of the input are at fault, the
(1-based, header excluded) row numbers so the user can find them in the source file.
"""

from __future__ import annotations

from collections.abc import Sequence

_MAX_ROWS_SHOWN = 10


class AnalyticsError(Exception):
    """Base class of every error raised by ``loyalist.analytics``."""

    code = "analytics_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(AnalyticsError):
    """The transactions table is unusable as given (missing columns, bad values)."""

    code = "invalid_input"

    def __init__(
        self,
        message: str,
        rows: Sequence[int] = (),
        column: str | None = None,
        order_ids: Sequence[str] = (),
    ) -> None:
        self.rows: list[int] = [int(r) for r in rows]
        self.column = column
        self.order_ids: list[str] = [str(o) for o in order_ids]
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:_MAX_ROWS_SHOWN])
            more = len(self.rows) - _MAX_ROWS_SHOWN
            suffix = f" and {more} more" if more > 0 else ""
            ids = ""
            if self.order_ids:
                ids = "; order ids " + ", ".join(self.order_ids[:_MAX_ROWS_SHOWN])
                if len(self.order_ids) > _MAX_ROWS_SHOWN:
                    ids += ", ..."
            message = f"{message} (rows {shown}{suffix}{ids}; {len(self.rows)} in total)"
        super().__init__(message)


class MissingColumnError(InputError):
    code = "missing_column"


class ModelError(AnalyticsError):
    """A model cannot be used as asked (not fitted, impossible parameters)."""

    code = "model_error"
