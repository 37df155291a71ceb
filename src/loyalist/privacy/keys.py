"""Key rotation for personal data at rest, without downtime.

``rotate(db, keyfile)`` adds a fresh data key to the keyfile and makes it current (every
process re-reads the keyfile when it changes, and when it meets a ciphertext naming a key
it has not loaded), then re-encrypts every personal value still under another key, in
short batches — one transaction each, the rows locked — so the service keeps answering.
Old keys stay in the keyfile: values written meanwhile by a process that had not yet
re-read it are still readable, and a later ``rotate`` (or ``reencrypt``) moves them too.
The blind-index key does not rotate (lookups depend on it).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import String, or_, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from loyalist.kit import crypto
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database, is_sqlite
from loyalist.models import Member, MemberIdentity

#: The encrypted columns: (model, attributes).
ENCRYPTED: list[tuple[Any, tuple[str, ...]]] = [
    (Member, ("phone", "email", "name", "birthday")),
    (MemberIdentity, ("value",)),
]


@dataclass(frozen=True)
class Rotation:
    key_id: str
    reencrypted: int


def new_key(keyfile: Path) -> str:
    """Add a random 256-bit key to ``keyfile`` (created if missing) and make it current."""
    keys: dict[str, bytes] = {}
    if keyfile.exists():
        _current, keys = crypto.read_keyfile(keyfile)
    kid = "k" + utcnow().strftime("%Y%m%d%H%M%S")
    n = 1
    while kid in keys or kid == crypto.BASE_KEY_ID:
        n += 1
        kid = "k" + utcnow().strftime("%Y%m%d%H%M%S") + f"-{n}"
    keys[kid] = os.urandom(32)
    crypto.write_keyfile(keyfile, kid, keys)
    crypto.reset()
    return kid


def _stale(model: Any, attrs: tuple[str, ...], current: str) -> Any:
    prefix = f"{crypto.PREFIX}{current}:%"
    return or_(
        *[
            (getattr(model, a).is_not(None))
            & ~type_coerce(getattr(model, a), String()).like(prefix)
            for a in attrs
        ]
    )


def _batch(session: Session, model: Any, attrs: tuple[str, ...], limit: int) -> int:
    current = crypto.keyring().current
    q = select(model).where(_stale(model, attrs, current)).order_by(model.id).limit(limit)
    if not is_sqlite(session):
        q = q.with_for_update(skip_locked=True)
    rows = list(session.scalars(q.execution_options(populate_existing=True)))
    for row in rows:
        for a in attrs:
            if getattr(row, a) is not None:
                flag_modified(row, a)  # written again: encrypted under the current key
    session.flush()
    return len(rows)


def _one_batch(session: Session, *, model: Any, attrs: tuple[str, ...], limit: int) -> int:
    return _batch(session, model, attrs, limit)


def reencrypt(
    db: Database, *, batch: int = 500, progress: Callable[[int], None] | None = None
) -> int:
    """Re-encrypt every personal value not under the current key; how many rows moved."""
    total = 0
    for model, attrs in ENCRYPTED:
        while True:
            n = db.run(functools.partial(_one_batch, model=model, attrs=attrs, limit=batch))
            total += n
            if progress is not None and n:
                progress(total)
            if n < batch:
                break
    return total


def rotate(db: Database, keyfile: Path, *, batch: int = 500) -> Rotation:
    kid = new_key(keyfile)
    return Rotation(kid, reencrypt(db, batch=batch))


def key_usage(session: Session) -> dict[str, int]:
    """How many stored values each key id encrypts ("clear": not encrypted)."""
    found: Counter[str] = Counter()
    for model, attrs in ENCRYPTED:
        for a in attrs:
            col = type_coerce(getattr(model, a), String())
            for (token,) in session.execute(select(col).where(col.is_not(None))):
                found[crypto.key_id(str(token)) or "clear"] += 1
    return dict(sorted(found.items()))
