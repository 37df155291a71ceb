"""Signing secrets at rest: AES-GCM under a key derived from ``Settings.secret_key``.

The secrets must be recoverable (a signature needs them), so they are encrypted, not
hashed. Changing ``LOYALIST_SECRET_KEY`` makes stored secrets unreadable: rotate every
endpoint's secret afterwards.
"""

from __future__ import annotations

import base64
import logging
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from loyalist.config import get_settings

log = logging.getLogger("loyalist.webhooks")
_VERSION = "v1:"
_AAD = b"loyalist.webhooks.secret"
_DEV_KEY = "loyalist-development-only"
_warned = False


def _key() -> bytes:
    global _warned
    material = get_settings().secret_key
    if not material:
        if not _warned:
            log.warning(
                "LOYALIST_SECRET_KEY is not set: webhook secrets are encrypted with a "
                "development key (set it in production)"
            )
            _warned = True
        material = _DEV_KEY
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"loyalist webhooks v1"
    ).derive(material.encode())


def seal(secret: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_key()).encrypt(nonce, secret.encode(), _AAD)
    return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()


def open_(sealed: str) -> str:
    if not sealed.startswith(_VERSION):
        raise ValueError("not a sealed webhook secret")
    raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :].encode())
    try:
        return AESGCM(_key()).decrypt(raw[:12], raw[12:], _AAD).decode()
    except InvalidTag as exc:
        raise ValueError("the webhook secret cannot be decrypted with this secret_key") from exc
