"""Personal data at rest: AES-256-GCM ciphertexts with key ids, and keyed blind indexes.

Keys come from the environment (read here, so that the column types below work in every
process without wiring):

* ``LOYALIST_SECRET_KEY`` — the master secret. HKDF derives from it the **blind-index key**
  (HMAC-SHA256; it never rotates: lookups depend on it) and the data key ``k0``. Empty: a
  development key is used and a warning logged once.
* ``LOYALIST_KEYFILE`` — optional JSON ``{"current": "k20261206", "keys": {"k20261206":
  "<urlsafe base64 of 32 random bytes>", …}}`` of further data keys; ``current`` encrypts
  new values (``k0`` when there is no keyfile). ``loyalist keys rotate`` adds a key there
  and re-encrypts. The file is re-read when it changes (checked at most once a second) and
  whenever a ciphertext names a key not loaded yet, so running processes follow a rotation
  without a restart.

A ciphertext is ``enc:<key id>:<urlsafe base64 of nonce ‖ ciphertext ‖ tag>``; the
authenticated data is the value's purpose (``member.phone``), so a ciphertext moved to
another column does not decrypt. Nothing here logs a value.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import operators
from sqlalchemy.types import TypeDecorator

log = logging.getLogger("loyalist.crypto")

PREFIX = "enc:"
BASE_KEY_ID = "k0"
_DEV_SECRET = "loyalist-development-only"  # noqa: S105 (a warning says so)


class CryptoError(Exception):
    """A value cannot be decrypted (unknown key, or tampered / moved ciphertext)."""


def _derive(secret: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret.encode())


@dataclass
class Keyring:
    index_key: bytes
    keys: dict[str, bytes]
    current: str
    keyfile: Path | None = None
    keyfile_mtime: float | None = None
    checked_at: float = 0.0
    aead: dict[str, AESGCM] = field(default_factory=dict)

    def cipher(self, kid: str) -> AESGCM:
        c = self.aead.get(kid)
        if c is None:
            c = self.aead[kid] = AESGCM(self.keys[kid])
        return c


def read_keyfile(path: Path) -> tuple[str, dict[str, bytes]]:
    """The keyfile's current key id and keys (ValueError if malformed)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict):
        raise ValueError(f"{path}: not a keyfile ({{'current': id, 'keys': {{id: key}}}})")
    keys: dict[str, bytes] = {}
    for kid, b64 in doc["keys"].items():
        raw = base64.urlsafe_b64decode(str(b64).encode())
        if len(raw) != 32 or ":" in kid or not kid:
            raise ValueError(f"{path}: key {kid!r} is not 32 bytes of urlsafe base64")
        keys[str(kid)] = raw
    current = str(doc.get("current", ""))
    if current not in keys:
        raise ValueError(f"{path}: current key {current!r} is not in its keys")
    return current, keys


def write_keyfile(path: Path, current: str, keys: dict[str, bytes]) -> None:
    """Write a keyfile atomically, readable by its owner only."""
    doc = {
        "current": current,
        "keys": {k: base64.urlsafe_b64encode(v).decode() for k, v in keys.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
    os.replace(tmp, path)


def load() -> Keyring:
    """Build the keyring from ``LOYALIST_SECRET_KEY`` and ``LOYALIST_KEYFILE``."""
    secret = os.environ.get("LOYALIST_SECRET_KEY", "")
    if not secret:
        if not getattr(load, "_warned", False):
            log.warning(
                "LOYALIST_SECRET_KEY is not set: personal data is encrypted with a "
                "development key (set it in production)"
            )
            load._warned = True  # type: ignore[attr-defined]
        secret = _DEV_SECRET
    keys = {BASE_KEY_ID: _derive(secret, b"loyalist personal data v1")}
    current = BASE_KEY_ID
    keyfile_env = os.environ.get("LOYALIST_KEYFILE", "")
    keyfile = Path(keyfile_env) if keyfile_env else None
    mtime = None
    if keyfile is not None and keyfile.exists():
        mtime = keyfile.stat().st_mtime
        current, extra = read_keyfile(keyfile)
        keys.update(extra)
    return Keyring(
        index_key=_derive(secret, b"loyalist personal data blind index v1"),
        keys=keys,
        current=current,
        keyfile=keyfile,
        keyfile_mtime=mtime,
        checked_at=time.monotonic(),
    )


_lock = threading.Lock()
_ring: Keyring | None = None


def keyring(*, refresh: bool = False) -> Keyring:
    """The process's keyring; re-read when the keyfile changed (checked once a second)."""
    global _ring
    ring = _ring
    now = time.monotonic()
    if ring is not None and not refresh:
        if ring.keyfile is None or now - ring.checked_at < 1.0:
            return ring
        ring.checked_at = now
        try:
            mtime = ring.keyfile.stat().st_mtime
        except OSError:
            mtime = None
        if mtime == ring.keyfile_mtime:
            return ring
    with _lock:
        _ring = load()
        return _ring


def reset() -> None:
    """Forget the loaded keys (tests, and after writing the keyfile)."""
    global _ring
    with _lock:
        _ring = None


def blind(purpose: str, value: str) -> str:
    """The keyed blind index of a normalised value: HMAC-SHA256, hex (64 characters)."""
    msg = purpose.encode() + b"\x00" + value.encode("utf-8")
    return hmac.new(keyring().index_key, msg, hashlib.sha256).hexdigest()


def encrypt(purpose: str, value: str) -> str:
    ring = keyring()
    nonce = os.urandom(12)
    sealed = ring.cipher(ring.current).encrypt(nonce, value.encode("utf-8"), purpose.encode())
    return f"{PREFIX}{ring.current}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def key_id(token: str) -> str | None:
    """The key id a ciphertext names (None: not a ciphertext)."""
    if not token.startswith(PREFIX):
        return None
    return token[len(PREFIX) :].split(":", 1)[0]


def decrypt(purpose: str, token: str) -> str:
    """The plaintext of ``token``; a value stored before encryption is returned as it is."""
    kid = key_id(token)
    if kid is None:
        return token
    ring = keyring()
    if kid not in ring.keys:
        ring = keyring(refresh=True)  # rotated by another process since we loaded
        if kid not in ring.keys:
            raise CryptoError(f"unknown key id {kid!r} (is LOYALIST_KEYFILE complete?)")
    raw = base64.urlsafe_b64decode(token[len(PREFIX) + len(kid) + 1 :].encode())
    try:
        return ring.cipher(kid).decrypt(raw[:12], raw[12:], purpose.encode()).decode("utf-8")
    except InvalidTag as exc:
        raise CryptoError(f"a {purpose} value does not decrypt (wrong key or altered)") from exc


def fold(value: str) -> str:
    """A loose form for comparing names: no surrounding or repeated spaces, case-folded."""
    return " ".join(value.split()).casefold()


class Encrypted(TypeDecorator[str]):
    """A string column stored encrypted (AES-GCM); reads give the plaintext back.

    Every ciphertext is fresh, so SQL equality on the column itself means nothing. With
    ``index_column`` (the sibling column holding ``blind(index_purpose, value)``),
    ``col == v``, ``col != v``, ``col.in_([…])`` and ``col.not_in([…])`` compare that blind
    index instead (``folded``: the value is :func:`fold`-ed first), so existing queries keep
    working; ``is_(None)`` compares the ciphertext column. Ordering and ``like`` on it are
    meaningless.
    """

    impl = String(512)
    cache_ok = True

    def __init__(
        self,
        purpose: str,
        length: int = 512,
        *,
        index_column: str | None = None,
        index_purpose: str | None = None,
        folded: bool = False,
    ) -> None:
        super().__init__(length)
        self.purpose = purpose
        self.index_column = index_column
        self.index_purpose = index_purpose
        self.folded = folded

    def index_of(self, value: str) -> str:
        assert self.index_purpose is not None
        return blind(self.index_purpose, fold(value) if self.folded else value)

    class comparator_factory(TypeDecorator.Comparator[str]):
        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            t = self.type
            assert isinstance(t, Encrypted)
            table = getattr(self.expr, "table", None)
            if t.index_column is None or table is None:
                return super().operate(op, *other, **kwargs)
            index = table.c[t.index_column]
            if op in (operators.eq, operators.ne) and isinstance(other[0], str):
                return op(index, t.index_of(other[0]))
            if (
                op in (operators.in_op, operators.not_in_op)
                and isinstance(other[0], list | tuple | set)
                and all(isinstance(v, str) for v in other[0])
            ):
                return op(index, [t.index_of(v) for v in other[0]])
            return super().operate(op, *other, **kwargs)

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return encrypt(self.purpose, value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return decrypt(self.purpose, value)


class EncryptedDate(TypeDecorator[dt.date]):
    """A date stored encrypted (its ISO form); reads give a ``date``."""

    impl = String(128)
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__(128)
        self.purpose = purpose

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, dt.date):
            raise TypeError("EncryptedDate stores dates")
        return encrypt(self.purpose, value.isoformat())

    def process_result_value(self, value: str | None, dialect: Dialect) -> dt.date | None:
        if value is None:
            return None
        return dt.date.fromisoformat(decrypt(self.purpose, value))
