"""allauth hooks: web sign-ups become traders; the username is kept as typed."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter

from .choices import Role


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):  # type: ignore[no-untyped-def]
        user.role = Role.TRADER
        return super().save_user(request, user, form, commit=commit)
