"""Exchange adapters: one small synchronous interface (``ExchangeAdapter``) over ccxt and paper trading.

Only ``ccxt_adapter`` imports ccxt. Get an adapter for a config with ``exchanges.services.adapter_for``.
"""

from .base import ExchangeAdapter
from .types import Balance, OrderFill, OrderRequest, OrderState, Ticker

__all__ = ["Balance", "ExchangeAdapter", "OrderFill", "OrderRequest", "OrderState", "Ticker"]
