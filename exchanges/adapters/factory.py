"""Building adapters from plain inputs: the ccxt adapter of an exchange (live, its testnet, or the
simulator), a public one for market data, and paper trading over public ones.

Nothing here reads the database: credentials arrive decrypted, and market rules come from the
``rules`` source the caller passes (``exchanges.services.adapter_for`` passes ``exchanges.rules.STORE``;
without one an adapter keeps the rules it loads in its own memory).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings

from exchanges.choices import SIMULATOR
from exchanges.simulator.testing import ccxt_binance_config

from .base import ExchangeAdapter, MarketRulesSource
from .paper import PaperAdapter

if TYPE_CHECKING:
    from .ccxt_adapter import CcxtAdapter


def _ccxt_adapter_class() -> type[CcxtAdapter]:
    # Imported on first use rather than with this module: importing ccxt takes about 1.4 s and 60 MB,
    # and web processes (which import exchanges for the webhook's symbol lookups) never call an exchange.
    from .ccxt_adapter import CcxtAdapter

    return CcxtAdapter


def supported_exchange_names() -> frozenset[str]:
    """Every exchange name a config may use: ccxt's exchange ids and ``simulator``."""
    # ccxt is imported here on first use for the reason given in `_ccxt_adapter_class`.
    from .ccxt_adapter import supported_exchange_ids

    return supported_exchange_ids() | {SIMULATOR}


def timeout_ms() -> int:
    """``settings.EXCHANGE_TIMEOUT_MS``: how long one exchange call may take."""
    return int(getattr(settings, "EXCHANGE_TIMEOUT_MS", 10_000))


def ccxt_adapter(
    *,
    exchange_name: str,
    credentials: Any = None,
    sandbox: bool = False,
    circuit_name: str | None = None,
    account_label: str = "public",
    rules: MarketRulesSource | None = None,
) -> ExchangeAdapter:
    """ccxt's client of ``exchange_name``; ``simulator`` is ccxt's binance pointed at ``SIMULATOR_URL`` (in
    every mode, so ``sandbox`` does not apply to it)."""
    adapter_class = _ccxt_adapter_class()
    if exchange_name != SIMULATOR:
        return adapter_class(
            exchange_name=exchange_name,
            ccxt_id=exchange_name,
            credentials=credentials,
            sandbox=sandbox,
            circuit_name=circuit_name,
            account_label=account_label,
            timeout_ms=timeout_ms(),
            rules=rules,
        )
    overrides = ccxt_binance_config(
        str(settings.SIMULATOR_URL),
        credentials.api_key if credentials else "",
        credentials.api_secret if credentials else "",
    )
    overrides.pop("apiKey", None)
    overrides.pop("secret", None)
    return adapter_class(
        exchange_name=SIMULATOR,
        ccxt_id="binance",
        credentials=credentials,
        config_overrides=overrides,
        circuit_name=circuit_name or f"public:{SIMULATOR}",
        account_label=account_label,
        timeout_ms=timeout_ms(),
        rules=rules,
    )


def public_adapter(exchange_name: str, *, rules: MarketRulesSource | None = None) -> ExchangeAdapter:
    """Market data and market rules of an exchange, without credentials."""
    return ccxt_adapter(exchange_name=exchange_name, rules=rules)


def paper_adapter(
    *, config_id: Any, exchange_name: str, key_checker: ExchangeAdapter | None, rules: MarketRulesSource | None
) -> PaperAdapter:
    """Paper trading for a config: orders fill locally on prices from ``settings.PAPER_PRICE_SOURCE``
    (``auto``: the exchange, else the simulator when the exchange cannot be reached)."""
    source = getattr(settings, "PAPER_PRICE_SOURCE", "auto")
    if exchange_name == SIMULATOR or source == "simulator":
        sources = [public_adapter(SIMULATOR, rules=rules)]
    elif source == "exchange":
        sources = [public_adapter(exchange_name, rules=rules)]
    else:
        sources = [public_adapter(exchange_name, rules=rules), public_adapter(SIMULATOR, rules=rules)]
    return PaperAdapter(config_id=config_id, exchange_name=exchange_name, sources=sources, key_checker=key_checker)
