"""Deterministic client order ids and their inverse."""

from __future__ import annotations

import re
import uuid

from hypothesis import given
from hypothesis import strategies as st

from exchanges.client_ids import client_order_id_for, intent_id_from_client_order_id

VALID = re.compile(r"^[A-Za-z0-9]{1,32}$")


def test_same_intent_same_id_and_valid_everywhere() -> None:
    intent = uuid.UUID("12345678-1234-5678-1234-567812345678")
    first = client_order_id_for(intent)
    assert first == client_order_id_for(intent)
    assert len(first) == 24 and VALID.match(first)
    assert client_order_id_for(uuid.uuid4()) != first


def test_extremes() -> None:
    assert client_order_id_for(uuid.UUID(int=0)) == "te" + "0" * 22
    top = client_order_id_for(uuid.UUID(int=(1 << 128) - 1))
    assert len(top) == 24 and intent_id_from_client_order_id(top) == uuid.UUID(int=(1 << 128) - 1)


@given(st.uuids())
def test_inverse(intent: uuid.UUID) -> None:
    client_id = client_order_id_for(intent)
    assert VALID.match(client_id)
    assert intent_id_from_client_order_id(client_id) == intent


def test_foreign_ids_are_not_ours() -> None:
    for foreign in [
        "",
        "abc",
        "x-TKT5PX2F662cde7a90114475b86e21",
        "sim0000000000000000001",
        "te" + "!" * 22,
        "tz" + "0" * 22,
    ]:
        assert intent_id_from_client_order_id(foreign) is None
    assert intent_id_from_client_order_id("te" + "z" * 22) is None  # above 2**128
