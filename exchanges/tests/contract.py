"""The contract every exchange connector must pass, written against ``ExchangeAdapter`` only.

A connector's test module subclasses ``ExchangeAdapterContract`` and provides two fixtures:

* ``adapter``: a ready ``ExchangeAdapter`` for an account holding at least 10000 USDT and 1 BTC, with
  BTC/USDT at 65000;
* ``venue``: a ``Venue`` (the test's side door into the exchange: move prices, see what it holds,
  inject faults). Venues that cannot inject faults return ``False`` from ``supports_faults``; those
  tests are skipped for them.

Amounts follow Binance's BTC/USDT rules (tick 0.01, step 0.00001, min notional 5-10 USDT).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Protocol

import pytest

from exchanges.adapters.base import ExchangeAdapter
from exchanges.adapters.types import OrderRequest, OrderState
from exchanges.client_ids import client_order_id_for
from exchanges.exceptions import (
    DuplicateClientOrderIdError,
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
    RateLimitedError,
    SymbolNotFoundError,
    UnknownOutcomeError,
)

D = Decimal
SYMBOL = "BTC/USDT"
EXCHANGE_SYMBOL = "BTCUSDT"


class Venue(Protocol):
    supports_faults: bool
    supports_partial_fills: bool

    def set_price(self, exchange_symbol: str, price: str, partial_fill_ratio: str | None = None) -> None: ...

    def orders_with_client_id(self, client_order_id: str) -> list[dict[str, Any]]: ...

    def add_fault(self, match: str, action: str, count: int = 1) -> None: ...


def new_client_id() -> str:
    return client_order_id_for(uuid.uuid4())


def limit(
    side: str, quantity: str, price: str, *, symbol: str = SYMBOL, client_order_id: str | None = None
) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        type="limit",
        quantity=D(quantity),
        price=D(price),
        client_order_id=client_order_id or new_client_id(),
    )


def market(side: str, quantity: str, *, symbol: str = SYMBOL) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        type="market",
        quantity=D(quantity),
        price=None,
        client_order_id=new_client_id(),
    )


class ExchangeAdapterContract:
    """Behaviour shared by every adapter. Subclasses provide ``adapter`` and ``venue`` fixtures."""

    # ---------------------------------------------------------------------------- market data

    def test_resolves_every_common_spelling_of_a_symbol(self, adapter: ExchangeAdapter) -> None:
        for raw in ("BTC/USDT", "BTCUSDT", "btcusdt", "btc/usdt"):
            rules = adapter.resolve_symbol(raw)
            assert (rules.symbol, rules.exchange_symbol) == ("BTC/USDT", "BTCUSDT")
        assert adapter.market_rules("BTC/USDT").tick_size == D("0.01")
        with pytest.raises(SymbolNotFoundError):
            adapter.resolve_symbol("NOPE/USDT")

    def test_ticker_and_candles_are_decimal(self, adapter: ExchangeAdapter, venue: Venue) -> None:
        venue.set_price(EXCHANGE_SYMBOL, "65010.5")
        ticker = adapter.fetch_ticker("BTCUSDT")
        assert ticker.symbol == SYMBOL
        assert ticker.last == D("65010.5")
        candles = adapter.fetch_ohlcv(SYMBOL, "1m", limit=5)
        assert candles and all(isinstance(value, Decimal) for value in candles[-1][1:])

    # --------------------------------------------------------------------------------- orders

    def test_limit_order_rests_and_is_found_by_both_ids(self, adapter: ExchangeAdapter, venue: Venue) -> None:
        request = limit("buy", "0.001", "60000")
        placed = adapter.create_order(request)
        assert placed.status == "open"
        assert placed.client_order_id == request.client_order_id
        assert (placed.price, placed.quantity, placed.filled_quantity) == (D("60000"), D("0.001"), D(0))

        by_exchange_id = adapter.fetch_order(SYMBOL, exchange_order_id=placed.exchange_order_id)
        by_client_id = adapter.fetch_order("BTCUSDT", client_order_id=request.client_order_id)
        assert by_exchange_id.exchange_order_id == by_client_id.exchange_order_id == placed.exchange_order_id
        assert by_client_id.client_order_id == request.client_order_id
        assert len(venue.orders_with_client_id(request.client_order_id)) == 1

    def test_price_and_quantity_are_rounded_down_before_sending(self, adapter: ExchangeAdapter) -> None:
        placed = adapter.create_order(limit("buy", "0.0012399", "60000.019"))
        assert (placed.price, placed.quantity) == (D("60000.01"), D("0.00123"))

    def test_cancel_then_cancel_again_reports_the_canceled_order(self, adapter: ExchangeAdapter) -> None:
        placed = adapter.create_order(limit("buy", "0.001", "60000"))
        canceled = adapter.cancel_order(SYMBOL, exchange_order_id=placed.exchange_order_id)
        assert canceled.status == "canceled"
        again = adapter.cancel_order(SYMBOL, client_order_id=placed.client_order_id)
        assert again.status == "canceled"
        assert again.exchange_order_id == placed.exchange_order_id

    def test_unknown_orders_are_not_found(self, adapter: ExchangeAdapter) -> None:
        with pytest.raises(OrderNotFoundError):
            adapter.fetch_order(SYMBOL, client_order_id=new_client_id())
        with pytest.raises(OrderNotFoundError):
            adapter.cancel_order(SYMBOL, client_order_id=new_client_id())

    def test_open_orders_per_symbol_and_all(self, adapter: ExchangeAdapter) -> None:
        btc = adapter.create_order(limit("buy", "0.001", "60000"))
        eth = adapter.create_order(limit("sell", "0.01", "4000", symbol="ETH/USDT"))
        adapter.cancel_order(
            SYMBOL, exchange_order_id=adapter.create_order(limit("buy", "0.001", "59000")).exchange_order_id
        )

        on_btc = adapter.fetch_open_orders(SYMBOL)
        everything = adapter.fetch_open_orders()
        assert [o.exchange_order_id for o in on_btc] == [btc.exchange_order_id]
        assert {o.exchange_order_id for o in everything} == {btc.exchange_order_id, eth.exchange_order_id}
        assert all(o.is_open for o in everything)

    def test_resting_order_fills_when_the_price_crosses(self, adapter: ExchangeAdapter, venue: Venue) -> None:
        placed = adapter.create_order(limit("buy", "0.002", "64000"))
        venue.set_price(EXCHANGE_SYMBOL, "63900")
        filled = adapter.fetch_order(SYMBOL, exchange_order_id=placed.exchange_order_id)
        assert filled.status == "filled"
        assert filled.filled_quantity == D("0.002")
        assert filled.average_price == D("64000")
        trades = adapter.fetch_my_trades(SYMBOL)
        mine = [t for t in trades if t.exchange_order_id == placed.exchange_order_id]
        assert sum(t.quantity for t in mine) == D("0.002")
        assert all(t.price == D("64000") and t.fee > 0 for t in mine)

    def test_partial_fills(self, adapter: ExchangeAdapter, venue: Venue) -> None:
        if not venue.supports_partial_fills:
            pytest.skip("this venue fills resting orders completely")
        placed = adapter.create_order(limit("buy", "0.002", "64000"))
        venue.set_price(EXCHANGE_SYMBOL, "63950", partial_fill_ratio="0.5")
        partial = adapter.fetch_order(SYMBOL, exchange_order_id=placed.exchange_order_id)
        assert partial.status == "partially_filled"
        assert partial.filled_quantity == D("0.001")
        assert partial.remaining_quantity == D("0.001")
        assert [o.exchange_order_id for o in adapter.fetch_open_orders(SYMBOL)] == [placed.exchange_order_id]
        canceled = adapter.cancel_order(SYMBOL, client_order_id=placed.client_order_id)
        assert canceled.status == "canceled"
        assert canceled.filled_quantity == D("0.001")

    def test_market_order_fills_at_once_with_fees(self, adapter: ExchangeAdapter) -> None:
        filled = adapter.create_order(market("buy", "0.01"))
        assert filled.status == "filled"
        assert filled.filled_quantity == D("0.01")
        assert filled.average_price == D("65000")
        assert filled.fee == D("0.00001") and filled.fee_asset == "BTC"

    def test_balance_shows_funds_locked_by_resting_orders(self, adapter: ExchangeAdapter) -> None:
        before = adapter.fetch_balance()
        adapter.create_order(limit("buy", "0.01", "60000"))
        after = adapter.fetch_balance()
        assert after["USDT"].used - before["USDT"].used == D("600")
        assert after["USDT"].free == before["USDT"].free - D("600")
        assert after["USDT"].total == before["USDT"].total

    def test_insufficient_balance(self, adapter: ExchangeAdapter, venue: Venue) -> None:
        request = limit("buy", "1", "60000")  # 60000 USDT
        with pytest.raises(InsufficientFundsError):
            adapter.create_order(request)
        assert venue.orders_with_client_id(request.client_order_id) == []

    def test_filter_failures_are_refused_before_sending(self, adapter: ExchangeAdapter, venue: Venue) -> None:
        tiny = limit("buy", "0.00001", "60000")  # 0.6 USDT
        with pytest.raises(InvalidOrderError) as notional:
            adapter.create_order(tiny)
        assert notional.value.field == "notional"
        below_step = limit("buy", "0.000001", "60000")
        with pytest.raises(InvalidOrderError) as quantity:
            adapter.create_order(below_step)
        assert quantity.value.field == "quantity"
        assert venue.orders_with_client_id(tiny.client_order_id) == []
        assert venue.orders_with_client_id(below_step.client_order_id) == []

    def test_exchange_side_filter_failure_on_a_market_order(self, adapter: ExchangeAdapter) -> None:
        with pytest.raises(InvalidOrderError):
            adapter.create_order(market("buy", "0.00001"))  # 0.65 USDT: below min notional at the fill price

    def test_duplicate_client_order_id_is_refused_while_open(self, adapter: ExchangeAdapter) -> None:
        first = limit("buy", "0.001", "60000")
        adapter.create_order(first)
        with pytest.raises(DuplicateClientOrderIdError):
            adapter.create_order(limit("buy", "0.001", "59000", client_order_id=first.client_order_id))

    def test_place_order_safely_without_trouble_places_once(self, adapter: ExchangeAdapter, venue: Venue) -> None:
        request = limit("buy", "0.001", "60000")
        placed = adapter.place_order_safely(request)
        assert placed.status == "open"
        assert len(venue.orders_with_client_id(request.client_order_id)) == 1

    # --------------------------------------------------------------------------------- faults

    def test_rate_limit_answer_becomes_rate_limited_error(self, adapter: ExchangeAdapter, venue: Venue) -> None:
        if not venue.supports_faults:
            pytest.skip("this venue cannot inject faults")
        venue.add_fault("POST /api/v3/order", "error_429")
        request = limit("buy", "0.001", "60000")
        with pytest.raises(RateLimitedError) as info:
            adapter.create_order(request)
        assert info.value.retry_after > 0
        assert venue.orders_with_client_id(request.client_order_id) == []

    def test_timeout_after_accept_is_resolved_by_lookup(self, adapter: ExchangeAdapter, venue: Venue) -> None:
        if not venue.supports_faults:
            pytest.skip("this venue cannot inject faults")
        request = limit("buy", "0.001", "60000")
        venue.add_fault("POST /api/v3/order", "timeout_after_accept")
        with pytest.raises(UnknownOutcomeError):
            adapter.create_order(request)

        venue.add_fault("POST /api/v3/order", "timeout_after_accept")
        second = limit("buy", "0.001", "59000")
        resolved = adapter.place_order_safely(second)
        assert resolved.client_order_id == second.client_order_id
        assert resolved.status == "open"
        assert len(venue.orders_with_client_id(second.client_order_id)) == 1

    def test_error_500_on_placement_resends_once_after_confirmed_absence(
        self, adapter: ExchangeAdapter, venue: Venue
    ) -> None:
        if not venue.supports_faults:
            pytest.skip("this venue cannot inject faults")
        venue.add_fault("POST /api/v3/order", "error_500")
        request = limit("buy", "0.001", "60000")
        placed = adapter.place_order_safely(request)
        assert placed.status == "open"
        held = venue.orders_with_client_id(request.client_order_id)
        assert len(held) == 1
        assert held[0]["orderId"] == int(placed.exchange_order_id)

    def test_still_unknown_after_resend_is_reported(self, adapter: ExchangeAdapter, venue: Venue) -> None:
        if not venue.supports_faults:
            pytest.skip("this venue cannot inject faults")
        venue.add_fault("POST /api/v3/order", "error_500", count=2)
        request = limit("buy", "0.001", "60000")
        with pytest.raises(UnknownOutcomeError) as info:
            adapter.place_order_safely(request)
        assert info.value.client_order_id == request.client_order_id
        assert venue.orders_with_client_id(request.client_order_id) == []

    def test_reads_retry_a_transient_server_error(self, adapter: ExchangeAdapter, venue: Venue) -> None:
        if not venue.supports_faults:
            pytest.skip("this venue cannot inject faults")
        placed = adapter.create_order(limit("buy", "0.001", "60000"))
        venue.add_fault("GET /api/v3/order", "error_500")
        found = adapter.fetch_order(SYMBOL, exchange_order_id=placed.exchange_order_id)
        assert found.exchange_order_id == placed.exchange_order_id


def assert_same_order(a: OrderState, b: OrderState) -> None:
    assert (a.exchange_order_id, a.client_order_id, a.symbol) == (b.exchange_order_id, b.client_order_id, b.symbol)
