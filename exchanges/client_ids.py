"""Deterministic client order ids from order intent UUIDs.

``client_order_id_for(intent_id)`` is the two-letter prefix ``te`` plus the UUID's 128 bits in base62,
zero-padded to 22 characters: 24 characters of ``[A-Za-z0-9]``, valid as Binance ``newClientOrderId``
(≤ 36, ``[.A-Z:/a-z0-9_-]``), Bybit ``orderLinkId`` (≤ 36) and OKX ``clOrdId`` (≤ 32, alphanumeric).
The same intent always maps to the same id, so a resend after a crash is recognised by the exchange
and by our lookups, and ``intent_id_from_client_order_id`` gives the intent back.
"""

from __future__ import annotations

import uuid

PREFIX = "te"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {char: index for index, char in enumerate(ALPHABET)}
BODY_LENGTH = 22  # 62**22 > 2**128
LENGTH = len(PREFIX) + BODY_LENGTH


def client_order_id_for(intent_id: uuid.UUID) -> str:
    """The client order id of an order intent (24 chars, ``[A-Za-z0-9]``)."""
    number = intent_id.int
    digits: list[str] = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    body = "".join(reversed(digits)).rjust(BODY_LENGTH, ALPHABET[0])
    return PREFIX + body


def intent_id_from_client_order_id(client_order_id: str) -> uuid.UUID | None:
    """The intent UUID behind one of our client order ids, or ``None`` for ids we did not make."""
    if not isinstance(client_order_id, str) or len(client_order_id) != LENGTH:
        return None
    if not client_order_id.startswith(PREFIX):
        return None
    number = 0
    for char in client_order_id[len(PREFIX) :]:
        value = _INDEX.get(char)
        if value is None:
            return None
        number = number * 62 + value
    if number >= 1 << 128:
        return None
    return uuid.UUID(int=number)
