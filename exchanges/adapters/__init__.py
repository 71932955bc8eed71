"""Exchange adapters: one small synchronous interface (``ExchangeAdapter``) over ccxt and paper trading.

Only ``ccxt_adapter`` imports ccxt. Adapters read no database for market rules: they load and return
them, and look them up in the ``MarketRulesSource`` they were built with. Get an adapter for a config
with ``exchanges.services.adapter_for``; ``factory`` builds them from plain inputs.
"""

from .base import ExchangeAdapter
from .types import Balance, OrderFill, OrderRequest, OrderState, Ticker

__all__ = ["Balance", "ExchangeAdapter", "OrderFill", "OrderRequest", "OrderState", "Ticker"]
