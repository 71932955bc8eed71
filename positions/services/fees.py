"""A fee charged in a third asset (e.g. BNB on BTC/USDT) valued in the quote asset when its fill is booked.

Binance takes its commission in BNB when the account pays fees with BNB (a discount), so a fill's fee is in
neither asset of the market. The position arithmetic counts such a fee like a quote fee of its value
(docs/engine.md#position-arithmetic), so the value is fixed once, at booking: the fee times the last price of
FEEASSET/QUOTE on the group's exchange at that moment, stored on the fill (`Fill.fee_quote_value`).

Valuing never blocks a booking: when no price can be had (network error, no such market) the fill is booked
with no value (null, counted as 0) and one warning names the trades left unvalued. Only trades not booked yet
are valued, so a state seen again costs no ticker request and logs nothing again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from accounts.logs import log_warning
from exchanges.adapters.types import OrderFill
from exchanges.exceptions import ExchangeError
from exchanges.services import adapter_for

from .. import ledger
from ..ledger import Order
from ..rules.position import base_quote, is_third_asset_fee

logger = logging.getLogger(__name__)

STORED_PLACES = Decimal("1e-18")  # Fill.fee_quote_value's decimal places (positions.models.PriceField)


def fee_quote_values(
    *, order_id: Any, fills: Sequence[OrderFill], symbol: str = "", adapter: Any = None
) -> dict[str, Decimal | None]:
    """trade id → the quote value of its third-asset fee (None: no price could be had), for the fills of
    `fills` that have such a fee and are not booked yet. Makes one ticker request per fee asset (usually
    one: BNB); never raises for want of a price. Called outside any transaction (a network call).

    `symbol`, the market the exchange's answer names ("BTC/USDT"), lets the usual case (fees in the base or
    quote asset) return without reading the order: every fill booking passes here."""
    if not any(fill.fee and fill.fee_asset for fill in fills):
        return {}  # the usual case: no fee, or the fee of a placement answer not itemized yet
    if "/" in symbol and not _third(fills, *base_quote(symbol)):
        return {}
    order = ledger.order_get(order_id=order_id, related=("exchange_config",))
    base, quote = base_quote(order.symbol)
    third = _third(fills, base, quote)
    if not third:
        return {}
    booked = ledger.order_trade_ids(order=order)
    third = [fill for fill in third if str(fill.trade_id) not in booked]
    if not third:
        return {}
    prices, problems = _prices(order, sorted({str(fill.fee_asset) for fill in third}), quote, adapter)
    values: dict[str, Decimal | None] = {}
    for fill in third:
        price = prices.get(str(fill.fee_asset))
        values[str(fill.trade_id)] = _value(fill.fee, price) if price is not None else None
    unvalued = [trade_id for trade_id, value in values.items() if value is None]
    if unvalued:
        log_warning(
            "ORDER",
            f"order {order.client_order_id}: the fee of {len(unvalued)} fill(s) in a third asset is booked without "
            f"a value in {quote} ({'; '.join(problems) or 'no price'}): cost, fees and PnL leave it out",
            user=getattr(order.exchange_config, "user_id", None),
            details={"order_id": str(order.pk), "symbol": order.symbol, "trade_ids": unvalued},
        )
    return values


def _third(fills: Sequence[OrderFill], base: str, quote: str) -> list[OrderFill]:
    """The fills whose fee is in neither asset of the base/quote market."""
    return [f for f in fills if is_third_asset_fee(f.fee or Decimal(0), f.fee_asset or "", base=base, quote=quote)]


def _prices(order: Order, assets: list[str], quote: str, adapter: Any) -> tuple[dict[str, Decimal], list[str]]:
    """The last price in `quote` of each fee asset (FEEASSET/QUOTE), and why any is missing."""
    prices: dict[str, Decimal] = {}
    problems: list[str] = []
    for asset in assets:
        symbol = f"{asset}/{quote}"
        try:
            adapter = adapter or adapter_for(order.exchange_config)
            ticker = adapter.fetch_ticker(symbol)
        except ExchangeError as exc:
            problems.append(f"{symbol}: {exc}")
            continue
        except Exception as exc:  # valuing a fee must never fail the fill's booking (a bug included)
            logger.exception("fee valuation: %s", symbol)
            problems.append(f"{symbol}: {type(exc).__name__}: {exc}")
            continue
        price = ticker.last or ((ticker.bid + ticker.ask) / 2 if ticker.bid and ticker.ask else None)
        if price is None or price <= 0:
            problems.append(f"{symbol}: no price")
            continue
        prices[asset] = price
    return prices, problems


def _value(fee: Decimal, price: Decimal) -> Decimal | None:
    """fee × price at the stored precision (None for a value the column cannot hold)."""
    try:
        return (fee * price).quantize(STORED_PLACES)
    except InvalidOperation:
        return None
