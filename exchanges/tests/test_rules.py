"""exchanges.rules: one owner of market rules, whose stores reach every process through a Redis version."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

from exchanges import rules
from exchanges.adapters.factory import public_adapter
from exchanges.models import MarketRule
from exchanges.precision import MarketRules, market_rules_to_json
from tradingsite.tests.support import test_database_url

ROOT = Path(__file__).resolve().parents[2]
EXCHANGE = "okx"


def market(base: str, tick: str = "0.01") -> MarketRules:
    return MarketRules(
        symbol=f"{base}/USDT",
        exchange_symbol=f"{base}-USDT",
        base=base,
        quote="USDT",
        tick_size=Decimal(tick),
        step_size=Decimal("0.0001"),
        min_qty=Decimal("0.0001"),
        min_notional=Decimal("5"),
    )


def tick(symbol: str) -> Decimal:
    """The tick size this process reads for a market of EXCHANGE."""
    found = rules.market_rule_get(exchange_name=EXCHANGE, symbol=symbol)
    assert found is not None, symbol
    return found.tick_size


STORE_IN_ANOTHER_PROCESS = """
import sys
import django

django.setup()
from exchanges.precision import market_rules_from_json
from exchanges.rules import market_rules_store

exchange, *texts = sys.argv[1:]
market_rules_store(exchange_name=exchange, rules=[market_rules_from_json(text) for text in texts])
"""


def store_in_another_process(exchange_name: str, stored: list[MarketRules]) -> None:
    """`market_rules_store` run by a separate Python process (its own memory) on the same database and Redis."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tradingsite.settings.test", "DATABASE_URL": test_database_url()}
    texts = [market_rules_to_json(item) for item in stored]
    subprocess.run(
        [sys.executable, "-c", STORE_IN_ANOTHER_PROCESS, exchange_name, *texts],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
    )


@pytest.mark.django_db(transaction=True)  # the other process must see this one's rows, and the reverse
def test_a_store_in_another_process_reaches_this_processs_memory(django_assert_num_queries: Any) -> None:
    rules.market_rules_store(exchange_name=EXCHANGE, rules=[market("BTC"), market("ETH")])
    assert rules.market_symbol_resolve(exchange_name=EXCHANGE, raw="BTCUSDT") == ("BTC/USDT", "BTC-USDT")
    assert tick("BTC/USDT") == Decimal("0.01")
    assert rules.market_rules_count(exchange_name=EXCHANGE) == 2
    assert rules.market_symbol_resolve(exchange_name=EXCHANGE, raw="SOLUSDT") is None

    # A change behind the store's back (no new version) is not seen, however long we wait: this process
    # answers from its memory, and only a new version makes it look again.
    MarketRule.objects.filter(exchange_name=EXCHANGE, symbol="BTC/USDT").update(tick_size=Decimal("0.5"))
    time.sleep(rules.VERSION_CHECK_INTERVAL_S)
    assert tick("BTC/USDT") == Decimal("0.01")
    with django_assert_num_queries(0):
        assert rules.market_symbol_resolve(exchange_name=EXCHANGE, raw="btc/usdt", cached_only=True) == (
            "BTC/USDT",
            "BTC-USDT",
        )

    store_in_another_process(EXCHANGE, [market("BTC", tick="0.1"), market("ETH"), market("SOL")])
    time.sleep(rules.VERSION_CHECK_INTERVAL_S)

    # The webhook's path (memory only) hands over to a caller that may do I/O once the version is due...
    with pytest.raises(rules.NotCachedError):
        rules.market_symbol_resolve(exchange_name=EXCHANGE, raw="SOLUSDT", cached_only=True)
    # ...which compares versions and sees the other process's rules,
    assert rules.market_symbol_resolve(exchange_name=EXCHANGE, raw="SOLUSDT") == ("SOL/USDT", "SOL-USDT")
    assert tick("BTC/USDT") == Decimal("0.1")
    resolved = rules.market_rule_resolve(exchange_name=EXCHANGE, raw="sol-usdt")
    assert resolved is not None and resolved.symbol == "SOL/USDT"
    assert rules.market_rules_count(exchange_name=EXCHANGE) == 3
    # and the memory answers the webhook again without any I/O.
    with django_assert_num_queries(0):
        assert rules.market_symbol_resolve(exchange_name=EXCHANGE, raw="SOL/USDT", cached_only=True) == (
            "SOL/USDT",
            "SOL-USDT",
        )


@pytest.mark.django_db
def test_the_storing_process_forgets_at_once_and_pruned_markets_are_gone() -> None:
    rules.market_rules_store(exchange_name=EXCHANGE, rules=[market("BTC"), market("ETH")])
    assert rules.market_symbol_resolve(exchange_name=EXCHANGE, raw="ETHUSDT") == ("ETH/USDT", "ETH-USDT")
    assert rules.market_rules_count(exchange_name=EXCHANGE) == 2

    rules.market_rules_store(exchange_name=EXCHANGE, rules=[market("BTC", tick="0.1")])

    assert tick("BTC/USDT") == Decimal("0.1")
    assert rules.market_rules_count(exchange_name=EXCHANGE) == 1
    assert rules.market_symbol_resolve(exchange_name=EXCHANGE, raw="BTCUSDT") == ("BTC/USDT", "BTC-USDT")
    with pytest.raises(rules.NotCachedError):  # not in the index: only the database can say
        rules.market_symbol_resolve(exchange_name=EXCHANGE, raw="ETHUSDT", cached_only=True)
    assert MarketRule.objects.filter(exchange_name=EXCHANGE).count() == 1


@pytest.mark.django_db
def test_many_markets_read_together_in_one_query_then_from_memory(django_assert_num_queries: Any) -> None:
    rules.market_rules_store(exchange_name=EXCHANGE, rules=[market(base) for base in ("BTC", "ETH", "SOL", "XRP")])
    cache.clear()  # the store has just filled Redis: start from the database
    rules.market_rules_forget_local(EXCHANGE)
    wanted = [(EXCHANGE, "BTC/USDT"), (EXCHANGE, "eth/usdt"), (EXCHANGE, "SOL/USDT"), (EXCHANGE, "NOPE/USDT")]
    with django_assert_num_queries(1):
        found = rules.market_rules_get_many(markets=wanted)
    assert {key: value.symbol for key, value in found.items()} == {
        (EXCHANGE, "BTC/USDT"): "BTC/USDT",
        (EXCHANGE, "eth/usdt"): "ETH/USDT",
        (EXCHANGE, "SOL/USDT"): "SOL/USDT",
    }  # an unknown market is left out, as market_rule_get answers None
    rules.market_rules_forget_local(EXCHANGE)
    with django_assert_num_queries(1):  # from Redis now; only the unknown one is asked of the database
        assert rules.market_rules_get_many(markets=wanted) == found
    with django_assert_num_queries(1):  # from memory; the unknown one again
        assert rules.market_rules_get_many(markets=wanted) == found
    assert found[(EXCHANGE, "BTC/USDT")] == rules.market_rule_get(exchange_name=EXCHANGE, symbol="BTC/USDT")


@pytest.mark.django_db
def test_an_adapter_without_a_store_keeps_the_rules_it_loads_in_memory(
    simulator: Any, settings: Any, django_assert_num_queries: Any
) -> None:
    """Adapters load and return rules; the database is the rules store's business, not theirs."""
    settings.SIMULATOR_URL = simulator.url
    adapter = public_adapter("simulator")
    try:
        loaded = adapter.load_market_rules()
        assert {"BTC/USDT", "ETH/USDT"} <= {item.symbol for item in loaded}
        with django_assert_num_queries(0):
            assert adapter.resolve_symbol("btcusdt").exchange_symbol == "BTCUSDT"
            assert adapter.market_rules("ETH/USDT").tick_size > 0
    finally:
        adapter.close()
    assert not MarketRule.objects.exists()


# ------------------------------------------------------------------------------------------ layering


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth of the file (relative ones made absolute)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.update(f"{base}.{alias.name}" for alias in node.names)
            found.add(base)
    return found


def test_adapters_never_reach_the_rules_store_or_services() -> None:
    forbidden = ("exchanges.services", "exchanges.selectors", "exchanges.rules", "exchanges.models.MarketRule")
    for path in sorted((ROOT / "exchanges" / "adapters").glob("*.py")):
        reached = [name for name in _imports(path) if name.startswith(forbidden)]
        assert reached == [], f"{path.name} imports {reached}"


def test_ccxt_is_imported_by_one_module_only() -> None:
    """In the engine's code, that is; tests of the simulator drive the real ccxt client on purpose."""
    importers = []
    for path in ROOT.rglob("*.py"):
        if {".venv", ".data", "tests"} & set(path.relative_to(ROOT).parts):
            continue
        if any(name == "ccxt" or name.startswith("ccxt.") for name in _imports(path)):
            importers.append(str(path.relative_to(ROOT)))
    assert sorted(importers) == ["exchanges/adapters/ccxt_adapter.py"]
