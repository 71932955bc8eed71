"""Market rules, adapters' plumbing (budget, breaker, secrets in errors), tasks and the demo setup."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from accounts.models import SystemLog
from exchanges import selectors, services, tasks
from exchanges.adapters.ccxt_adapter import CcxtAdapter
from exchanges.circuit import CircuitState
from exchanges.exceptions import (
    AuthenticationFailedError,
    CircuitOpenError,
    MarketRulesMissingError,
    SymbolNotFoundError,
    TemporaryExchangeError,
)
from exchanges.models import ExchangeConfig, MarketRule

from .contract import limit
from .factories import ExchangeConfigFactory, MarketRuleFactory
from .support import SimulatorAccount, make_simulator_account

pytestmark = pytest.mark.django_db


# ------------------------------------------------------------------------------------ market rules


def test_refresh_stores_rules_in_postgres_and_redis(simulator: Any, settings: Any) -> None:
    settings.SIMULATOR_URL = simulator.url
    count = services.market_rules_refresh(exchange_name="simulator")
    assert count == MarketRule.objects.filter(exchange_name="simulator").count() >= 7
    row = MarketRule.objects.get(exchange_name="simulator", symbol="BTC/USDT")
    assert (row.exchange_symbol, row.tick_size, row.step_size) == ("BTCUSDT", Decimal("0.01"), Decimal("0.00001"))
    MarketRule.objects.all().delete()  # Redis alone still answers
    cached = selectors.market_rule_resolve(exchange_name="simulator", raw="btcusdt")
    assert cached is not None and cached.min_notional > 0


def test_resolve_from_the_database_in_every_spelling() -> None:
    MarketRuleFactory(exchange_name="okx", exchange_symbol="BTC-USDT")
    for raw in ("BTC/USDT", "btc/usdt", "BTC-USDT", "BTCUSDT", "OKX:BTCUSDT", " btcusdt "):
        found = selectors.market_rule_resolve(exchange_name="okx", raw=raw)
        assert found is not None and found.symbol == "BTC/USDT", raw
    assert selectors.market_rule_resolve(exchange_name="okx", raw="ETHUSDT") is None
    assert selectors.market_rule_resolve(exchange_name="binance", raw="BTCUSDT") is None


def test_missing_rules_block_orders_unless_a_fallback_is_configured(settings: Any) -> None:
    settings.SIMULATOR_URL = "http://127.0.0.1:9"
    settings.EXCHANGE_TIMEOUT_MS = 300
    config = ExchangeConfigFactory.create(exchange_name="simulator")
    adapter = services.adapter_for(config)
    adapter.sleep = lambda seconds: None
    try:
        with pytest.raises(MarketRulesMissingError, match="orders are blocked"):
            adapter.resolve_symbol("BTCUSDT")
        settings.MARKET_RULES_FALLBACKS = {
            "simulator": {
                "BTC/USDT": {"tick_size": "0.1", "step_size": "0.001", "min_qty": "0.001", "min_notional": "5"}
            }
        }
        rules = adapter.resolve_symbol("BTCUSDT")
        assert (rules.symbol, rules.tick_size, rules.base, rules.quote) == ("BTC/USDT", Decimal("0.1"), "BTC", "USDT")
    finally:
        adapter.close()


def test_unknown_symbol_once_rules_are_loaded(simulator_account: SimulatorAccount) -> None:
    adapter = simulator_account.adapter()
    adapter.resolve_symbol("BTCUSDT")
    with pytest.raises(SymbolNotFoundError):
        adapter.market_rules("DOGE/EUR")


def test_tasks_are_registered_under_their_names(simulator_account: SimulatorAccount) -> None:
    # tradingsite wires the apps together and nothing below it imports it; this test checks that wiring.
    from tradingsite.celery import app

    assert tasks.refresh_market_rules.name == "exchanges.refresh_market_rules"
    assert tasks.validate_all.name == "exchanges.validate_all"
    assert {"exchanges.refresh_market_rules", "exchanges.validate_all"} <= set(app.tasks)
    assert tasks.refresh_market_rules.run()["simulator"] > 0
    assert tasks.validate_all.run() == {"validated": 1, "failed": 0}
    assert ExchangeConfig.objects.get(pk=simulator_account.config.pk).is_validated is True


# --------------------------------------------------------------------------------- adapter plumbing


def test_every_call_books_weight_and_the_header_corrects_it(simulator_account: SimulatorAccount) -> None:
    adapter = simulator_account.adapter()
    adapter.fetch_balance()
    budget = adapter.budget  # type: ignore[attr-defined]
    booked = budget.used()
    assert booked >= 40  # exchangeInfo (20, first call) + account (20)
    adapter.fetch_ticker("BTC/USDT")
    assert budget.used() >= booked + 2
    # the simulator counts every test's calls this minute; our counter follows its header upwards
    reported = int(adapter._client().last_response_headers["X-MBX-USED-WEIGHT-1M"])  # type: ignore[attr-defined]  # noqa: SLF001
    assert budget.used() >= reported


def test_a_second_account_reuses_the_process_markets_and_books_no_exchange_info(
    simulator_account: SimulatorAccount, user_factory: Any
) -> None:
    """exchangeInfo (weight 20) is loaded once per process, and only that load is booked: a worker with
    many accounts and threads once spent its whole minute of weight on markets it already had."""
    first = simulator_account.adapter()
    first.fetch_ticker("BTC/USDT")
    other = make_simulator_account(simulator_account.simulator, user=user_factory())
    try:
        for _ in range(3):  # a minute boundary in between resets the counters: measure again
            minute = int(time.time() // 60)
            first.fetch_ticker("BTC/USDT")
            booked = first.budget.used()  # type: ignore[attr-defined]
            second = other.adapter()
            second.fetch_ticker("BTC/USDT")  # this client's first call
            if int(time.time() // 60) == minute:
                break
        assert second.budget.used() == booked + 2  # type: ignore[attr-defined]  # the ticker, no markets
    finally:
        other.close()


def test_repeated_network_failures_open_the_circuit(settings: Any) -> None:
    settings.SIMULATOR_URL = "http://127.0.0.1:9"
    settings.EXCHANGE_TIMEOUT_MS = 300
    config = ExchangeConfigFactory.create(exchange_name="simulator")
    adapter = services.adapter_for(config)
    adapter.sleep = lambda seconds: None
    try:
        with pytest.raises(TemporaryExchangeError):
            adapter.fetch_balance()  # three attempts: three failures
        with pytest.raises(CircuitOpenError):
            adapter.fetch_balance()  # two more open the circuit; the third attempt is refused
        assert adapter.circuit.state() == CircuitState.OPEN  # type: ignore[attr-defined]
        with pytest.raises(CircuitOpenError):
            adapter.fetch_balance()
        ok, message = adapter.validate()
        assert not ok and "circuit open" in message
    finally:
        adapter.close()


def test_errors_and_reprs_carry_no_secret(simulator: Any, settings: Any) -> None:
    settings.SIMULATOR_URL = simulator.url
    config = ExchangeConfigFactory.create(
        exchange_name="simulator", api_key="leakyKEY1234567890", api_secret="leakySECRET0987654321"
    )
    adapter = services.adapter_for(config)
    try:
        with pytest.raises(AuthenticationFailedError) as info:
            adapter.fetch_balance()
        for text in (str(info.value), repr(adapter), repr(config.credentials())):
            assert "leakyKEY1234567890" not in text and "leakySECRET0987654321" not in text
            assert "signature=" not in text
    finally:
        adapter.close()


def test_undecryptable_keys_are_an_authentication_error(settings: Any) -> None:
    config = ExchangeConfigFactory.create(exchange_name="simulator")
    ExchangeConfig.objects.filter(pk=config.pk).update(api_secret_encrypted=config.api_key_encrypted)
    config.refresh_from_db()
    with pytest.raises(AuthenticationFailedError, match="store them again"):
        services.adapter_for(config)
    validated = services.exchange_config_validate(config=config)
    assert validated.is_validated is False and "store them again" in validated.validation_message


def test_sync_methods_refuse_to_run_inside_an_event_loop(simulator_account: SimulatorAccount) -> None:
    adapter = simulator_account.adapter()

    async def inside() -> None:
        adapter.ping()

    with pytest.raises(RuntimeError, match="synchronous"):
        asyncio.run(inside())


def test_testnet_and_live_configs_use_the_exchange_and_its_sandbox() -> None:
    testnet = services.adapter_for(ExchangeConfigFactory.create(exchange_name="binance", mode="testnet"))
    live = services.adapter_for(ExchangeConfigFactory.create(exchange_name="binance", mode="live"))
    assert isinstance(testnet, CcxtAdapter) and testnet.sandbox
    assert isinstance(live, CcxtAdapter) and not live.sandbox
    assert testnet._host(testnet._client()) == "testnet.binance.vision"  # noqa: SLF001
    assert live._host(live._client()) == "api.binance.com"  # noqa: SLF001
    testnet.close()
    live.close()


def test_paper_mode_uses_the_simulator_when_the_exchange_is_unreachable(simulator: Any, settings: Any) -> None:
    settings.SIMULATOR_URL = simulator.url
    settings.EXCHANGE_TIMEOUT_MS = 500
    simulator.set_price("BTCUSDT", "65000")
    config = ExchangeConfigFactory.create(exchange_name="binance", mode="paper")
    adapter = services.adapter_for(config)
    adapter.sleep = lambda seconds: None
    for source in adapter._sources:  # type: ignore[attr-defined]  # noqa: SLF001
        source.sleep = lambda seconds: None
    try:
        placed = adapter.create_order(limit("buy", "0.001", "60000"))  # api.binance.com cannot resolve here
        assert placed.status == "open" and placed.symbol == "BTC/USDT"
        assert adapter.fetch_ticker("BTCUSDT").last == Decimal("65000")
        assert SystemLog.objects.filter(message__contains="using the simulator's prices").count() == 1
    finally:
        adapter.close()


# ------------------------------------------------------------------------------------------ demo


def test_demo_setup_registers_the_demo_account_after_commit(
    simulator: Any, settings: Any, trader: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SIMULATOR_URL = simulator.url
    with django_capture_on_commit_callbacks(execute=True):
        config = services.demo_setup(user=trader)
    assert (config.exchange_name, config.mode) == ("simulator", "testnet")
    key = config.credentials().api_key
    assert simulator.balances(key)["USDT"]["free"].startswith("10000")
    with django_capture_on_commit_callbacks(execute=True):
        again = services.demo_setup(user=trader)  # idempotent
    assert again.pk == config.pk
    assert services.exchange_config_validate(config=again).is_validated is True


def test_demo_setup_without_a_simulator_only_warns(
    settings: Any, trader: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SIMULATOR_URL = "http://127.0.0.1:9"
    with django_capture_on_commit_callbacks(execute=True):
        services.demo_setup(user=trader)
    assert SystemLog.objects.filter(level="WARNING", message__contains="simulator not reachable").exists()
