"""Market rules for a group, read from the rules the exchanges app keeps (no exchange call)."""

from __future__ import annotations

from exchanges.precision import MarketRules
from exchanges.selectors import market_rule_get

from ..models import PositionGroup


def rules_for(group: PositionGroup) -> MarketRules | None:
    """The rules of the group's market on its exchange; ``None`` when none are stored."""
    return market_rule_get(exchange_name=group.exchange_config.exchange_name, symbol=group.symbol)
