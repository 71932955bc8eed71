"""Market rules for a group, read from the cache the exchanges app keeps (no exchange call)."""

from __future__ import annotations

from exchanges.precision import MarketRules

from ..models import PositionGroup


def rules_for(group: PositionGroup) -> MarketRules | None:
    from exchanges.selectors import market_rule_get

    return market_rule_get(exchange_name=group.exchange_config.exchange_name, symbol=group.symbol)
