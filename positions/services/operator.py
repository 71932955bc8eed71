"""What an operator does to a single order from the ops console (docs/processes.md#ops-console).

Cancelling goes through the order service (`orders.order_cancel`: looked up first when its outcome is
unknown, never resent), and is audited and written on the group's timeline.
"""

from __future__ import annotations

from typing import Any

from accounts.logs import audit

from .. import ledger
from ..choices import FINAL_ORDER_STATUSES
from . import orders
from .state import group_event


class OrderSettledError(Exception):
    """The order is already filled, cancelled, rejected or failed: nothing to cancel."""


def order_cancel_by_operator(*, order_id: Any, actor: Any, ip: str | None = None) -> str:
    """Cancel one order on the exchange. Returns `orders.SETTLED` (cancelled, or found filled meanwhile)
    or `orders.RETRY` (the exchange did not answer, or another process is sending it: try again)."""
    order = ledger.order_get(order_id=order_id, related=("group",))
    if order.status in FINAL_ORDER_STATUSES:
        raise OrderSettledError(f"the order is already {order.status}")
    result = orders.order_cancel(order_id=order_id)
    audit(
        user=actor,
        action="order_cancel",
        resource="order",
        resource_id=order.pk,
        details={"client_order_id": order.client_order_id, "symbol": order.symbol, "result": result},
        ip=ip,
    )
    group_event(order.group, "order_cancelled", f"operator cancelled order {order.client_order_id} ({result})")
    return result
