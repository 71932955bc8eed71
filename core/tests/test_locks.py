"""Advisory locks that never wait: taken when free, refused while another session holds them, released
after the block."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.db import connection

from core.locks import advisory_key, advisory_lock_try, advisory_locks_try

NAMESPACE = 0x7E57

pytestmark = pytest.mark.django_db(transaction=True)


def _other_session() -> psycopg.Connection:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    return psycopg.connect(**params, autocommit=True)


def test_a_lock_another_session_holds_is_refused_and_a_free_one_released_after_the_block():
    taken, free = uuid.uuid4(), uuid.uuid4()
    with _other_session() as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [NAMESPACE, advisory_key(taken)])
        with advisory_lock_try(NAMESPACE, taken) as ours:
            assert ours is False
        with advisory_locks_try(NAMESPACE, [taken, free]) as held:
            assert held == {str(free)}
            row = other.execute("SELECT pg_try_advisory_lock(%s, %s)", [NAMESPACE, advisory_key(free)]).fetchone()
            assert row == (False,)  # held by us inside the block
        row = other.execute("SELECT pg_try_advisory_lock(%s, %s)", [NAMESPACE, advisory_key(free)]).fetchone()
        assert row == (True,)  # released when the block ended
