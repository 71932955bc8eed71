"""allauth hooks: web sign-ups become traders; the username is kept as typed; the client is the real one."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest

from .choices import Role
from .middleware import client_ip


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):  # type: ignore[no-untyped-def]
        user.role = Role.TRADER
        return super().save_user(request, user, form, commit=commit)

    def get_client_ip(self, request: HttpRequest) -> str:
        # The same client as every other throttle and the webhook allowlist (docs/security.md#throttles).
        return client_ip(request) or "0.0.0.0"

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # Failed web logins lock out the pair (account, client), never the account for everyone: a
        # stranger cannot keep a trader out (docs/security.md#throttles).
        return f"{super()._get_login_attempts_cache_key(request, **credentials)}:{self.get_client_ip(request)}"
