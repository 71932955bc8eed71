"""The fill model: how a price path is walked inside a candle and which orders it fills (docs/backtests.md#fill-model).

One copy, used by the exchange simulator (its candle replay and its matching) and by the backtester
(`analytics.backtest`), so a live run against a replay and a backtest of the same alerts see the same
prices and the same fills. Pure: no Django, no I/O.

- Inside a candle the price walks open → low → high → close when close ≥ open, else open → high →
  low → close. The move from the previous close to the open (the gap) is the walk's first step: a
  resting order the gap jumps over fills at its own limit price, as on the exchange.
- A market order fills at the current price. A limit order that is marketable when placed (a buy at or
  above the current price, a sell at or below it) fills at once at the current price: it is the taker
  and gets the better price. Any other limit order rests and fills at its limit price at the first
  point of the walk that reaches it (a buy when the price is at or below it, a sell at or above).
- Commission is the rate times what the account receives, in that asset (the base asset on a buy, the
  quote asset on a sell), rounded half-up to the asset's commission precision (Binance's 8 places).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Final

BUY: Final = "buy"
SELL: Final = "sell"
DEFAULT_COMMISSION_RATE: Final = Decimal("0.001")
DEFAULT_COMMISSION_PLACES: Final = 8


def candle_walk[P](open_: P, high: P, low: P, close: P, *, bullish: bool) -> tuple[P, P, P, P]:
    """The four points a candle's price visits, in order (`bullish`: close ≥ open)."""
    if bullish:
        return (open_, low, high, close)
    return (open_, high, low, close)


def walk_points(
    open_: Decimal, high: Decimal, low: Decimal, close: Decimal
) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """`candle_walk` of a candle of Decimal prices."""
    return candle_walk(open_, high, low, close, bullish=close >= open_)


def resting_fills(side: str, limit: Decimal, price: Decimal) -> bool:
    """Whether a resting limit order on `side` at `limit` fills when the price reaches `price`."""
    return price <= limit if side == BUY else price >= limit


def marketable(side: str, limit: Decimal, current: Decimal | None) -> bool:
    """Whether a limit order takes at once when placed at the `current` price (None: no price yet)."""
    return current is not None and resting_fills(side, limit, current)


def commission(amount: Decimal, places: int = DEFAULT_COMMISSION_PLACES) -> Decimal:
    """The commission on `amount` (rate already applied), rounded half-up to `places` decimals."""
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def fill_fee(
    side: str,
    *,
    price: Decimal,
    quantity: Decimal,
    rate: Decimal = DEFAULT_COMMISSION_RATE,
    places: int = DEFAULT_COMMISSION_PLACES,
) -> Decimal:
    """The fee of a fill, in the asset received: base on a buy (of the quantity), quote on a sell."""
    if side == BUY:
        return commission(quantity * rate, places)
    return commission(price * quantity * rate, places)
