"""Session-level PostgreSQL advisory locks that never wait, on Django's connection.

One process at a time may do a thing (send an order intent, run a user's risk cycle): the others learn
at once that it is taken and back off. An advisory lock is no transaction, so nothing else is held across
the network calls made under it, and the server drops it by itself when its holder dies. See
docs/engine.md#send-lock.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import DatabaseError, connection


def advisory_key(identifier: Any) -> int:
    """The lock's second key for a UUID (or its text): 31 bits of it."""
    return uuid.UUID(str(identifier)).int % 2**31


@contextlib.contextmanager
def advisory_locks_try(namespace: int, identifiers: Sequence[Any]) -> Iterator[set[str]]:
    """Take what is free of the locks of `identifiers` in one statement (and release them in one): yields
    the identifiers (as text) this process holds until the block ends."""
    keys = [advisory_key(identifier) for identifier in identifiers]
    if not keys:
        yield set()
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_lock(%s, k) FROM unnest(%s::int[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
            [namespace, keys],
        )
        granted = [bool(row[0]) for row in cursor.fetchall()]
    held = [key for key, ok in zip(keys, granted, strict=True) if ok]
    try:
        yield {str(identifier) for identifier, ok in zip(identifiers, granted, strict=True) if ok}
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, k) FROM unnest(%s::int[]) AS t(k)", [namespace, held])
            except DatabaseError:
                connection.close()  # ending the session is what releases the locks then


@contextlib.contextmanager
def advisory_lock_try(namespace: int, identifier: Any) -> Iterator[bool]:
    """`advisory_locks_try` for one identifier: whether this process holds its lock in the block."""
    with advisory_locks_try(namespace, [identifier]) as held:
        yield bool(held)
