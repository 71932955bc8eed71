"""Who may trade: the one role check every way in uses (docs/security.md#roles).

The webhook (`positions.rules.intake.decide`, from the role its read returns), the API's trading
permissions (`accounts.permissions.IsTraderOrHigher`), admin actions on behalf of a user, strategies
and Telegram commands all ask `user_may_trade` (or, where only the role is at hand, `role_may_trade`),
so a user demoted to viewer, or deactivated, can open nothing by any path. Pure: no database.
"""

from __future__ import annotations

from typing import Protocol

from .choices import ROLE_RANK, Role


class _Person(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def is_active(self) -> bool: ...

    @property
    def is_superuser(self) -> bool: ...


def role_may_trade(role: str, *, is_superuser: bool = False) -> bool:
    """True when `role` is trader or higher (a superuser always may)."""
    if is_superuser:
        return True
    try:
        return ROLE_RANK[Role(role)] >= ROLE_RANK[Role.TRADER]
    except ValueError:  # an unknown role grants nothing
        return False


def user_may_trade(*, user: _Person) -> bool:
    """True when `user` is active and may trade (`role_may_trade`)."""
    return bool(user.is_active) and role_may_trade(user.role, is_superuser=bool(user.is_superuser))


def trade_refusal(role: str) -> str:
    """The sentence a refused trading request answers with."""
    return f"This account's role is {role or 'unknown'}; trading needs the trader role."
