"""AES-256-GCM for exchange secrets, with a list of master keys: the first encrypts, all decrypt.

Ciphertext format (ASCII, fits a text column)::

    v1:<key id>:<base64url(nonce[12] + ciphertext + tag[16])>

The key id is a short fingerprint derived from the key itself (not its position), so reordering
``ENCRYPTION_KEYS`` or appending a new first key keeps every old ciphertext readable until
``manage.py rotate_encryption_key`` re-encrypts it with the new first key. ``context`` is bound to the
ciphertext as associated data, so a ciphertext copied into another row or field does not decrypt.

Secrets never appear in exception messages or reprs raised from here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

VERSION = "v1"
NONCE_BYTES = 12
KEY_ID_CHARS = 8


class DecryptionError(Exception):
    """A ciphertext could not be decrypted: tampered with, truncated, or made with a key we do not have."""


@dataclass(frozen=True)
class MasterKey:
    """One 32-byte master key and its fingerprint."""

    key_id: str
    key: bytes

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"


def key_id_for(key: bytes) -> str:
    """A short, stable fingerprint of a key (not reversible; identifies which key encrypted a value)."""
    return hashlib.sha256(b"exchanges.crypto.key-id:" + key).hexdigest()[:KEY_ID_CHARS]


def _decode_key(text: str, position: int) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ImproperlyConfigured(
            f"ENCRYPTION_KEYS entry #{position + 1} is not a base64-encoded 32-byte key "
            "(make one with: python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')"
        )
    return raw


def master_keys(keys: list[str] | None = None) -> list[MasterKey]:
    """The configured master keys, first (encrypting) key first."""
    configured = settings.ENCRYPTION_KEYS if keys is None else keys
    if not configured:
        raise ImproperlyConfigured("ENCRYPTION_KEYS is empty: exchange secrets cannot be encrypted.")
    decoded = [_decode_key(text, index) for index, text in enumerate(configured)]
    return [MasterKey(key_id=key_id_for(raw), key=raw) for raw in decoded]


def primary_key_id(keys: list[str] | None = None) -> str:
    """Fingerprint of the key that encrypts new values."""
    return master_keys(keys)[0].key_id


def encrypt(plaintext: str, *, context: str = "", keys: list[str] | None = None) -> str:
    """Encrypt ``plaintext`` with the first master key; ``context`` must be given again to decrypt."""
    key = master_keys(keys)[0]
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key.key).encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
    payload = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
    return f"{VERSION}:{key.key_id}:{payload}"


def ciphertext_key_id(ciphertext: str) -> str:
    """The fingerprint of the key a ciphertext was made with (raises ``DecryptionError`` if malformed)."""
    return _split(ciphertext)[0]


def _split(ciphertext: str) -> tuple[str, bytes]:
    parts = ciphertext.split(":") if isinstance(ciphertext, str) else []
    if len(parts) != 3 or parts[0] != VERSION or len(parts[1]) != KEY_ID_CHARS:
        raise DecryptionError("Not an encrypted value in the expected format (v1:<key id>:<data>).")
    payload = parts[2]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionError("Encrypted value is corrupted (invalid base64).") from None
    if len(raw) < NONCE_BYTES + 16:
        raise DecryptionError("Encrypted value is truncated.")
    return parts[1], raw


def decrypt(ciphertext: str, *, context: str = "", keys: list[str] | None = None) -> str:
    """Decrypt a value made by :func:`encrypt` with any configured key; ``DecryptionError`` otherwise."""
    key_id, raw = _split(ciphertext)
    by_id = {key.key_id: key for key in master_keys(keys)}
    key = by_id.get(key_id)
    if key is None:
        raise DecryptionError(
            f"Encrypted with key {key_id}, which is not in ENCRYPTION_KEYS; add that key back to read it."
        )
    try:
        plain = AESGCM(key.key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode("utf-8"))
    except InvalidTag:
        raise DecryptionError(
            f"Encrypted value failed authentication with key {key_id}: it was tampered with, "
            "belongs to another record, or the key is wrong."
        ) from None
    return plain.decode("utf-8")


def needs_rotation(ciphertext: str, *, keys: list[str] | None = None) -> bool:
    """True when the value was not encrypted with the current first key."""
    return ciphertext_key_id(ciphertext) != primary_key_id(keys)


def mask_secret(value: str | None) -> str:
    """``"****A4B1"``: four stars and the last four characters; short values show stars only."""
    if not value:
        return ""
    if len(value) <= 8:
        return "****"
    return "****" + value[-4:]
