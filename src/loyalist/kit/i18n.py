"""Gettext catalogues read from .po files at run time (no compile step), per locale.

Each package that has screens keeps ``locale/<lang>/LC_MESSAGES/messages.po`` beside its
templates; :func:`translations` merges them. Supported: ``zh_CN`` (default) and ``en``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Babel is imported with the first catalogue a page asks for, not at start (issue 11).
    from babel.support import Translations

SUPPORTED = ("zh_CN", "en")
DEFAULT = "zh_CN"
_cache: dict[tuple[str, tuple[str, ...]], Translations] = {}
_lock = threading.Lock()


def negotiate(accept_language: str | None, preferred: str | None = None) -> str:
    """The user's own choice first, then the browser's Accept-Language, then Chinese."""
    if preferred in SUPPORTED:
        return preferred
    for tag in _by_quality(accept_language or ""):
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


def _by_quality(header: str) -> list[str]:
    """The language tags of an Accept-Language header, most wanted first (q=0 dropped;
    equal weights keep their order)."""
    weighted: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if tag and q > 0:
            weighted.append((-q, i, tag.lower()))
    return [tag for _q, _i, tag in sorted(weighted)]


def translations(locale: str, dirs: tuple[Path, ...]) -> Translations:
    key = (locale, tuple(str(d) for d in dirs))
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    from babel.messages.pofile import read_po
    from babel.support import Translations

    merged = Translations()
    for d in dirs:
        po = d / locale / "LC_MESSAGES" / "messages.po"
        if po.exists():
            with po.open("rb") as fh:
                catalog = read_po(fh, locale=locale)
            t = Translations()
            for msg in catalog:
                if msg.id and msg.string and not msg.fuzzy:
                    mid = msg.id if isinstance(msg.id, str) else msg.id[0]
                    t._catalog[mid] = msg.string if isinstance(msg.string, str) else msg.string[0]
            merged.merge(t)
    with _lock:
        _cache[key] = merged
    return merged
