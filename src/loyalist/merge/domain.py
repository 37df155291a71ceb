"""Pure rules of identity merge (issue 13 item 2): which identity kinds clash, when a merge
may still be undone, and whether two members look like one person."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

#: Identity kinds a person normally holds once: two of them on one member is a conflict to
#: show in the preview (both are kept; staff decide).
SINGLE_KINDS = frozenset({"phone", "email", "wechat_openid", "app_id"})


def clashing_kinds(
    survivor: Iterable[tuple[str, str]], merged: Iterable[tuple[str, str]]
) -> list[str]:
    """Kinds both members hold with different values (e.g. two WeChat openids)."""
    a: dict[str, set[str]] = {}
    for kind, value in survivor:
        a.setdefault(kind, set()).add(value)
    out: set[str] = set()
    for kind, value in merged:
        if kind in SINGLE_KINDS and kind in a and value not in a[kind]:
            out.add(kind)
    return sorted(out)


def undo_refusal(
    *, status: str, now: datetime, undo_until: datetime, activity: list[str]
) -> str | None:
    """Why a merge cannot be undone now (None: it can)."""
    if status != "done":
        return "This merge was already undone."
    if now > undo_until:
        return f"The undo period ended at {undo_until.isoformat()}."
    if activity:
        return "Something happened to the members since the merge: " + "; ".join(activity)
    return None


def pair(a: int, b: int) -> tuple[int, int]:
    """A candidate pair, smaller id first."""
    return (a, b) if a < b else (b, a)
