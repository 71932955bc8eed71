"""``manage.py run_simulator``: the exchange simulator in the foreground (docs/processes.md#simulator)."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from exchanges.simulator.cli import add_arguments, main


class Command(BaseCommand):
    """Thin wrapper over ``python -m exchanges.simulator`` with the same options."""

    help = "Run the Binance-spot-compatible exchange simulator."
    # the simulator touches neither the database nor the models: start even while they are broken
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        argv = ["--host", options["host"], "--port", str(options["port"]), "--speed", str(options["speed"])]
        argv += ["--market-slippage-bps", str(options["market_slippage_bps"])]
        for flag, key in (
            ("--exchange-info", "exchange_info"),
            ("--candles", "candles"),
            ("--symbol", "symbol"),
            ("--partial-fill-ratio", "partial_fill_ratio"),
        ):
            if options[key] is not None:
                argv += [flag, str(options[key])]
        status = main(argv)
        if status:
            raise CommandError(f"simulator exited with status {status}")
