"""Position arithmetic from fills: the one copy of fee-net quantity and of the group's totals.

A fill is plain data (`FillData`); the services read fills from the ledger (`positions.ledger`) and
every total the engine shows or sells from is computed here: the group's totals, a pyramid's own
average for `pyramid_aggregate`, a leg's net quantity for its per-leg take-profit, and the per-leg
PnL of the API. See docs/engine.md#position-arithmetic.

Conventions:
- a fee paid in the base asset reduces the base a buy delivers (Binance takes it from what it buys),
  so what is held and what may be sold is the *fee-net* quantity;
- a fee paid in the quote asset is part of a buy's cost and reduces a sell's proceeds;
- a fee in a third asset (e.g. BNB) counts as a quote fee of `fee_quote_value`, its value in the quote
  asset when the fill was booked (docs/engine.md#position-arithmetic); unvalued (None), it counts as 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal("0")
BUY = "buy"
SELL = "sell"


@dataclass(frozen=True, slots=True)
class FillData:
    """One execution as the fills ledger records it. `side` is "buy" or "sell"."""

    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal = ZERO
    fee_asset: str = ""
    fee_quote_value: Decimal | None = None  # a third-asset fee valued in quote when booked; None: unknown


@dataclass(frozen=True, slots=True)
class PositionTotals:
    bought: Decimal  # base bought, gross
    sold: Decimal  # base sold
    held: Decimal  # base held now, net of base-asset fees
    cost: Decimal  # quote spent on the entries still held, fees included
    avg_entry: Decimal | None  # cost / held; None when nothing is held
    proceeds: Decimal  # quote received from sells, net of fees
    realized_pnl: Decimal
    fees_quote: Decimal  # every fee, valued in quote (a third-asset fee at its booked value)


def base_quote(symbol: str) -> tuple[str, str]:
    """("BTC", "USDT") for "BTC/USDT"."""
    base, _, quote = symbol.partition("/")
    return base, quote


def fee_in_base(fill: FillData, *, base: str) -> Decimal:
    return fill.fee if fill.fee_asset == base else ZERO


def fee_in_quote(fill: FillData, *, quote: str) -> Decimal:
    return fill.fee if fill.fee_asset == quote else ZERO


def is_third_asset_fee(fee: Decimal, fee_asset: str, *, base: str, quote: str) -> bool:
    """A fee charged in neither asset of the market (e.g. BNB on BTC/USDT): it needs a price to count."""
    return bool(fee) and bool(fee_asset) and fee_asset not in (base, quote)


def fee_in_third_asset(fill: FillData, *, base: str, quote: str) -> Decimal:
    """The quote value of a third-asset fee, as booked with the fill (0 when it could not be valued)."""
    if fill.fee_quote_value is None or not is_third_asset_fee(fill.fee, fill.fee_asset, base=base, quote=quote):
        return ZERO
    return fill.fee_quote_value


def quote_fee(fill: FillData, *, base: str, quote: str) -> Decimal:
    """Every fee of a fill paid in quote or valued in it (a base fee aside): a buy's cost, a sell's loss."""
    paid = fee_in_quote(fill, quote=quote)
    if fill.fee_quote_value is None:  # the usual case (and the backtester's): no third-asset fee valued
        return paid
    return paid + fee_in_third_asset(fill, base=base, quote=quote)


def fee_net_quantity(fill: FillData, *, base: str) -> Decimal:
    """The base a buy fill adds to the position: its quantity less a fee taken in the base asset."""
    return fill.quantity - fee_in_base(fill, base=base)


def net_proceeds(fill: FillData, *, base: str, quote: str) -> Decimal:
    """The quote a sell fill brings in: price × quantity less its fee (a base fee valued at the price, a
    third-asset fee at its booked quote value)."""
    return (
        fill.price * fill.quantity - quote_fee(fill, base=base, quote=quote) - fee_in_base(fill, base=base) * fill.price
    )


def net_bought(fills: Iterable[FillData], *, base: str) -> Decimal:
    """Fee-net base received by the buy fills (a leg's quantity for its take-profit)."""
    return sum((fee_net_quantity(fill, base=base) for fill in fills if fill.side == BUY), ZERO)


@dataclass(frozen=True, slots=True)
class PositionRunning:
    """`position_totals`' running sums after some fills, before the end's clamping: a caller that
    learns of fills one at a time (the backtester) adds each with `position_add` instead of summing
    every fill again; `position_totals` is the same fold over a whole list."""

    bought: Decimal = ZERO
    sold: Decimal = ZERO
    held: Decimal = ZERO
    cost: Decimal = ZERO
    proceeds: Decimal = ZERO
    realized: Decimal = ZERO
    fees_quote: Decimal = ZERO

    def totals(self) -> PositionTotals:
        held, cost = self.held, self.cost
        return PositionTotals(
            bought=self.bought,
            sold=self.sold,
            held=max(held, ZERO),
            cost=max(cost, ZERO),
            avg_entry=(cost / held) if held > 0 else None,
            proceeds=self.proceeds,
            realized_pnl=self.realized,
            fees_quote=self.fees_quote,
        )


NO_FILLS = PositionRunning()


def position_add(running: PositionRunning, fill: FillData, *, base: str, quote: str) -> PositionRunning:
    """The running sums after one more fill (average-cost accounting, see `position_totals`)."""
    bought, sold, held, cost, proceeds, realized, fees_quote = (
        running.bought,
        running.sold,
        running.held,
        running.cost,
        running.proceeds,
        running.realized,
        running.fees_quote,
    )
    base_fee = fee_in_base(fill, base=base)
    quote_fees = quote_fee(fill, base=base, quote=quote)
    fees_quote += quote_fees + base_fee * fill.price
    if fill.side == BUY:
        bought += fill.quantity
        held += fill.quantity - base_fee
        cost += fill.price * fill.quantity + quote_fees
    else:
        sold += fill.quantity
        avg = cost / held if held > 0 else ZERO
        net = net_proceeds(fill, base=base, quote=quote)
        proceeds += net
        realized += net - avg * fill.quantity
        cost -= avg * fill.quantity
        held -= fill.quantity
    return PositionRunning(bought, sold, held, cost, proceeds, realized, fees_quote)


def position_totals(fills: Iterable[FillData], *, base: str, quote: str) -> PositionTotals:
    """Average-cost accounting over fills in the order they executed.

    A buy adds its fee-net quantity and its cost (quote and valued third-asset fees included); a sell realizes
    (net proceeds − average entry × quantity) and takes its share of the cost with it.
    """
    running = NO_FILLS
    for fill in fills:
        running = position_add(running, fill, base=base, quote=quote)
    return running.totals()
