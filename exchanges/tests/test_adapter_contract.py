"""The connector contract (``contract.py``) run against the ccxt adapter on the simulator, and paper mode."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from exchanges.adapters.base import ExchangeAdapter
from exchanges.exceptions import OrderNotFoundError
from exchanges.services import adapter_for, paper_account_reset

from .contract import ExchangeAdapterContract, limit
from .support import DEFAULT_BALANCES, SimulatorAccount, make_simulator_account

pytestmark = pytest.mark.django_db


@dataclass
class SimulatorVenue:
    """The simulator's control API, seen from one account."""

    account: SimulatorAccount
    supports_faults: bool = True
    supports_partial_fills: bool = True

    def set_price(self, exchange_symbol: str, price: str, partial_fill_ratio: str | None = None) -> None:
        self.account.simulator.set_price(exchange_symbol, price, partial_fill_ratio)

    def orders_with_client_id(self, client_order_id: str) -> list[dict[str, Any]]:
        return [o for o in self.account.orders() if o["clientOrderId"] == client_order_id]

    def add_fault(self, match: str, action: str, count: int = 1) -> None:
        self.account.simulator.add_fault(match, action, count=count)


class TestCcxtAdapterOnSimulator(ExchangeAdapterContract):
    @pytest.fixture
    def adapter(self, simulator_account: SimulatorAccount) -> ExchangeAdapter:
        return simulator_account.adapter()

    @pytest.fixture
    def venue(self, simulator_account: SimulatorAccount) -> SimulatorVenue:
        return SimulatorVenue(simulator_account)


@dataclass
class PaperVenue:
    """Paper mode: prices come from the simulator, orders live in our database."""

    simulator: Any
    adapter: ExchangeAdapter
    supports_faults: bool = False
    supports_partial_fills: bool = False

    def set_price(self, exchange_symbol: str, price: str, partial_fill_ratio: str | None = None) -> None:
        self.simulator.set_price(exchange_symbol, price, partial_fill_ratio)

    def orders_with_client_id(self, client_order_id: str) -> list[dict[str, Any]]:
        try:
            order = self.adapter.fetch_order("BTC/USDT", client_order_id=client_order_id)
        except OrderNotFoundError:
            return []
        return [{"orderId": int(order.exchange_order_id), "clientOrderId": order.client_order_id}]

    def add_fault(self, match: str, action: str, count: int = 1) -> None:
        raise NotImplementedError


class TestPaperAdapterOnSimulatorPrices(ExchangeAdapterContract):
    @pytest.fixture
    def paper_account(self, simulator: Any, simulator_account: SimulatorAccount, user_factory: Any) -> Any:
        account = make_simulator_account(simulator, user=user_factory(), mode="paper")
        paper_account_reset(config=account.config, balances=dict(DEFAULT_BALANCES), actor=None)
        yield account
        account.close()

    @pytest.fixture
    def adapter(self, paper_account: SimulatorAccount) -> ExchangeAdapter:
        adapter = paper_account.adapter()
        assert type(adapter).__name__ == "PaperAdapter"
        return adapter

    @pytest.fixture
    def venue(self, simulator: Any, adapter: ExchangeAdapter) -> PaperVenue:
        return PaperVenue(simulator, adapter)

    def test_nothing_reaches_the_simulator(self, adapter: ExchangeAdapter, paper_account: SimulatorAccount) -> None:
        adapter.create_order(limit("buy", "0.001", "60000"))
        assert paper_account.orders() == []

    def test_state_survives_a_new_adapter(
        self, adapter: ExchangeAdapter, venue: PaperVenue, paper_account: SimulatorAccount
    ) -> None:
        placed = adapter.create_order(limit("buy", "0.002", "64000"))
        adapter.close()
        venue.set_price("BTCUSDT", "63000")
        fresh = adapter_for(paper_account.config)  # e.g. another worker, or after a restart
        try:
            filled = fresh.fetch_order("BTC/USDT", client_order_id=placed.client_order_id)
            balances = fresh.fetch_balance()
        finally:
            fresh.close()
        assert filled.status == "filled"
        assert balances["BTC"].total == Decimal("1") + Decimal("0.002") - Decimal("0.000002")
        assert balances["USDT"].total == Decimal("10000") - Decimal("128")
