"""Raw Redis access for counters and state shared by every process (weight budget, circuit breakers).

Keys go through the cache's key prefix so that test workers and deployments sharing one Redis do not
collide, and ``cache.clear()`` in tests starts every test from an empty key space.
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings
from django.core.cache import cache

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _client_for(url: str) -> redis.Redis:
    """One client per URL and process. Created under a lock: a client that lost a creation race would be
    garbage-collected while its pipeline still connects, and its finalizer closes the pool's sockets."""
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.get(url)
            if client is None:
                client = _clients[url] = redis.Redis.from_url(
                    url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5
                )
    return client


def redis_client() -> redis.Redis:
    """A client of the Redis that backs the default cache (one connection pool per process)."""
    location = settings.CACHES["default"]["LOCATION"]
    url = location[0] if isinstance(location, list | tuple) else location
    return _client_for(str(url))


def kv_key(*parts: object) -> str:
    """``<cache prefix>:1:exch:<parts joined by ':'>``."""
    return cache.make_key("exch:" + ":".join(str(part) for part in parts))
