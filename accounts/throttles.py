"""API throttles keyed on the real client (docs/security.md#throttles, `TRUSTED_PROXY_COUNT`).

DRF's own throttles take the client from `X-Forwarded-For` unless `NUM_PROXIES` is set, so a caller
could pick a fresh address per request. These ask `accounts.middleware.client_ip`, the same function
the webhook's allowlist uses: the forwarded address only as far as the configured proxies vouch for it.
"""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle, UserRateThrottle

from .middleware import client_ip


def _ident(request: Request) -> str:
    return client_ip(request) or "unknown"


class ClientScopedRateThrottle(ScopedRateThrottle):
    def get_ident(self, request: Request) -> str:
        return _ident(request)

    def get_rate(self) -> str | None:
        # The rates as configured now (DRF binds them to the class at import time).
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return rate if isinstance(rate, str) else None


class ClientAnonRateThrottle(AnonRateThrottle):
    def get_ident(self, request: Request) -> str:
        return _ident(request)


class ClientUserRateThrottle(UserRateThrottle):
    def get_ident(self, request: Request) -> str:
        return _ident(request)
