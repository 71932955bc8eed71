"""Order preparation shared by every adapter: precision and market rules before anything is sent."""

from __future__ import annotations

from decimal import Decimal

from exchanges.exceptions import InvalidOrderError
from exchanges.precision import MarketRules, PrecisionError, decimal_to_str, normalize_order, round_qty_down

from .types import OrderRequest


def prepare_order(req: OrderRequest, rules: MarketRules, *, exchange: str = "") -> tuple[Decimal | None, Decimal]:
    """Round price and quantity down to the tick and step and check the market's filters.

    Returns ``(price or None for market orders, quantity)``; raises ``InvalidOrderError`` naming the
    field (``price``, ``quantity``, ``notional``, ``symbol``) and the reason. Market orders are checked
    for step and quantity limits here; their notional is checked by the exchange at the fill price.
    """
    where = {"exchange": exchange, "operation": "create_order"}
    if req.type == "limit":
        assert req.price is not None  # OrderRequest guarantees it
        try:
            return normalize_order(req.price, req.quantity, rules)
        except PrecisionError as exc:
            raise InvalidOrderError(
                f"{rules.symbol}: {exc.reason}", field=exc.field, reason=exc.reason, **where
            ) from None
    if not rules.is_trading:
        reason = f"{rules.symbol} is not trading (status {rules.status})"
        raise InvalidOrderError(reason, field="symbol", reason=reason, **where)
    quantity = round_qty_down(req.quantity, rules)
    if quantity <= 0 or quantity < rules.min_qty:
        reason = (
            f"quantity {decimal_to_str(req.quantity)} is below the minimum quantity "
            f"{decimal_to_str(rules.min_qty)} (step {decimal_to_str(rules.step_size)})"
        )
        raise InvalidOrderError(f"{rules.symbol}: {reason}", field="quantity", reason=reason, **where)
    if rules.max_qty is not None and quantity > rules.max_qty:
        reason = f"quantity {decimal_to_str(quantity)} is above the maximum quantity {decimal_to_str(rules.max_qty)}"
        raise InvalidOrderError(f"{rules.symbol}: {reason}", field="quantity", reason=reason, **where)
    return None, quantity
