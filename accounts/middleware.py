"""The client IP of a request, honouring a configured number of trusted proxies (web sessions are tracked by
the login signal in `signals.py`)."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The caller's IP. X-Forwarded-For is trusted only for the configured number of proxy hops."""
    return client_ip_from(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR", ""))


def client_ip_from(remote: str | None, forwarded_for: str) -> str | None:
    """`client_ip` from the peer address and the X-Forwarded-For header (for raw ASGI routes)."""
    hops = settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [p.strip() for p in forwarded_for.split(",") if p.strip()]
        if len(forwarded) >= hops:
            remote = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(remote)) if remote else None
    except ValueError:
        return None
