"""Helpers for tests that start the project's own processes (web, worker) against the test database."""

from __future__ import annotations

from urllib.parse import quote, urlencode


def test_database_url() -> str:
    """The test database as a URL for a child process (the socket directory may be HOST or an option)."""
    from django.db import connection

    db = connection.settings_dict
    host = str(db.get("HOST") or "")
    host = quote(host, safe="") if host.startswith("/") else host
    port = f":{db['PORT']}" if db.get("PORT") else ""
    user = quote(str(db.get("USER") or ""), safe="")
    password = f":{quote(str(db['PASSWORD']), safe='')}" if db.get("PASSWORD") else ""
    options = {k: v for k, v in (db.get("OPTIONS") or {}).items() if isinstance(v, str | int)}
    query = f"?{urlencode(options)}" if options else ""
    return f"postgres://{user}{password}@{host}{port}/{quote(db['NAME'], safe='')}{query}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test
