"""Test helpers around the simulator (used by the root conftest's ``simulator_account`` fixture)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from exchanges.adapters.base import ExchangeAdapter
from exchanges.models import ExchangeConfig
from exchanges.services import adapter_for, exchange_config_store

DEFAULT_BALANCES = {"USDT": "10000", "BTC": "1", "ETH": "10"}


@dataclass
class SimulatorAccount:
    """A simulator account and the ``ExchangeConfig`` (``simulator``, testnet) that trades on it."""

    config: ExchangeConfig
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    simulator: Any
    _adapters: list[ExchangeAdapter] = field(default_factory=list, repr=False)

    def adapter(self) -> ExchangeAdapter:
        """``exchanges.services.adapter_for(config)``, closed again by the fixture."""
        adapter = adapter_for(self.config)
        adapter.sleep = lambda seconds: None  # the resolver's backoff adds nothing to a local simulator
        self._adapters.append(adapter)
        return adapter

    def orders(self) -> list[dict[str, Any]]:
        """Every order the simulator holds for this account (``GET /_sim/orders?api_key=``)."""
        return self.simulator.orders(self.api_key)

    def balances(self) -> dict[str, dict[str, str]]:
        return self.simulator.balances(self.api_key)

    def close(self) -> None:
        for adapter in self._adapters:
            adapter.close()
        self._adapters.clear()


def make_simulator_account(
    simulator: Any, *, user: Any, balances: dict[str, str] | None = None, mode: str = "testnet"
) -> SimulatorAccount:
    """Register fresh keys with the simulator and store them as the user's ``simulator`` config."""
    api_key = "sim" + secrets.token_hex(16)
    api_secret = secrets.token_hex(32)
    simulator.create_account(api_key, api_secret, balances or DEFAULT_BALANCES)
    config, _ = exchange_config_store(
        user=user, exchange_name="simulator", mode=mode, api_key=api_key, api_secret=api_secret
    )
    return SimulatorAccount(config=config, api_key=api_key, api_secret=api_secret, simulator=simulator)
