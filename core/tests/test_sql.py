"""The intake's raw-SQL helpers: placeholders numbered once per statement text."""

from __future__ import annotations

import pytest

from core.sql import numbered


def test_placeholders_are_numbered_in_order_and_percent_signs_unescaped():
    statement = "SELECT 1 FROM t WHERE a = %s AND b LIKE 'x%%' AND c IN (%s, %s)"
    assert numbered(statement) == b"SELECT 1 FROM t WHERE a = $1 AND b LIKE 'x%' AND c IN ($2, $3)"


def test_a_statement_longer_than_psycopgs_cache_limit_is_numbered_whole():
    statement = "INSERT INTO t VALUES (" + ", ".join(["%s"] * 200) + ")"
    assert numbered(statement).endswith(b"$199, $200)")


@pytest.mark.parametrize("statement", ["a = %(name)s", "a = %d", "100%"])
def test_other_placeholders_are_refused(statement):
    with pytest.raises(ValueError, match="only %s placeholders"):
        numbered(statement)
