"""Plain data the adapters exchange with the rest of the engine: frozen, Decimal, aware UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from exchanges.exceptions import InvalidOrderError

Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
OrderStatus = Literal["open", "partially_filled", "filled", "canceled", "rejected", "expired"]

SIDES: frozenset[str] = frozenset({"buy", "sell"})
ORDER_TYPES: frozenset[str] = frozenset({"limit", "market"})
OPEN_STATUSES: frozenset[str] = frozenset({"open", "partially_filled"})


@dataclass(frozen=True)
class OrderRequest:
    """An order we want on the exchange; ``client_order_id`` exists (and is stored) before it is sent."""

    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None
    client_order_id: str

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise InvalidOrderError(f"side must be buy or sell, got {self.side!r}", field="side")
        if self.type not in ORDER_TYPES:
            raise InvalidOrderError(f"type must be limit or market, got {self.type!r}", field="type")
        if not isinstance(self.quantity, Decimal):
            raise InvalidOrderError("quantity must be a Decimal", field="quantity")
        if self.quantity <= 0:
            raise InvalidOrderError(f"quantity {self.quantity} must be > 0", field="quantity")
        if self.type == "limit":
            if not isinstance(self.price, Decimal):
                raise InvalidOrderError("a limit order needs a Decimal price", field="price")
            if self.price <= 0:
                raise InvalidOrderError(f"price {self.price} must be > 0", field="price")
        elif self.price is not None and not isinstance(self.price, Decimal):
            raise InvalidOrderError("price must be a Decimal or None", field="price")
        if not self.client_order_id:
            raise InvalidOrderError("client_order_id is required", field="client_order_id")


@dataclass(frozen=True)
class OrderFill:
    """One execution (trade) of an order."""

    trade_id: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str | None
    timestamp: datetime | None
    exchange_order_id: str | None = None


@dataclass(frozen=True)
class OrderState:
    """What the exchange says about one order right now."""

    exchange_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    price: Decimal | None
    quantity: Decimal
    filled_quantity: Decimal
    average_price: Decimal | None
    fee: Decimal
    fee_asset: str | None
    fills: tuple[OrderFill, ...]
    timestamp: datetime | None

    @property
    def is_open(self) -> bool:
        """Still working on the book (open or partially filled)."""
        return self.status in OPEN_STATUSES

    @property
    def remaining_quantity(self) -> Decimal:
        """Quantity not filled yet."""
        return self.quantity - self.filled_quantity


@dataclass(frozen=True)
class Ticker:
    """Last traded price and best bid/ask of one market."""

    symbol: str
    last: Decimal | None
    bid: Decimal | None
    ask: Decimal | None
    timestamp: datetime | None


@dataclass(frozen=True)
class Balance:
    """One asset of an account: free + used (locked in orders) = total."""

    asset: str
    free: Decimal
    used: Decimal
    total: Decimal
