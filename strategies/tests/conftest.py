"""Fixtures for strategies tests: a trader with a `simulator` exchange config and cached market rules,
and a fresh per-process candle window."""

from __future__ import annotations

import pytest


@pytest.fixture
def sim_config(trader):
    """The trader's simulator config; the stale-alert guard is off: the ticks replay historic candles, and a
    signal carries its tick's time (docs/strategies.md#live)."""
    from exchanges.models import ExchangeConfig
    from positions.tests.conftest import lag_off, load_rules

    config = ExchangeConfig(user=trader, exchange_name="simulator", mode="testnet", is_enabled=True)
    config.set_credentials(api_key="demo-key-0001", api_secret="demo-secret-0001-xxxxxxxxxxxxxxxx", password=None)
    config.save()
    load_rules("simulator")
    lag_off(trader)
    return config


@pytest.fixture(autouse=True)
def _fresh_windows():
    """The tick's candle windows live in the process; the database of each test starts empty."""
    from strategies.services.live import WINDOWS

    WINDOWS.clear()
    yield
    WINDOWS.clear()
