"""Print the legs the engine would place: the same calculator as /api/grid/preview (docs/engine.md#grid-levels)."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from exchanges.precision import MarketRules, market_rules_from_exchange_info
from exchanges.selectors import market_rule_resolve
from positions.config import ConfigError, parse_engine_config
from positions.grid import GridError, compute_grid, legs_to_json

BUILT_IN_RULES = Path(__file__).resolve().parents[3] / "exchanges" / "simulator" / "default_exchange_info.json"


def rules_from_exchange_info(path: Path, symbol: str) -> MarketRules | None:
    return market_rules_from_exchange_info(json.loads(path.read_text()), symbol)


class Command(BaseCommand):
    help = "Print the grid legs for an entry price as JSON (level, price, quantity, notional, tp_price, ...)."
    requires_system_checks: list = []

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--config", required=True, help="engine/grid config JSON file")
        parser.add_argument("--entry-price", required=True)
        parser.add_argument("--exchange", required=True)
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--market-rules", help="a Binance exchangeInfo JSON file to take the rules from")
        parser.add_argument("--pyramid-index", type=int, default=0)

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        try:
            config = json.loads(Path(opts["config"]).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"--config: {exc}") from exc
        try:
            entry = Decimal(opts["entry_price"])
            if not entry.is_finite() or entry <= 0:
                raise InvalidOperation
        except InvalidOperation as exc:
            raise CommandError("--entry-price: must be a positive number") from exc
        try:
            _, grid = parse_engine_config(config)
        except ConfigError as exc:
            raise CommandError(f"--config: {exc}") from exc
        rules = self._rules(opts)
        try:
            legs = compute_grid(config=grid, pyramid_index=opts["pyramid_index"], entry_price=entry, rules=rules)
        except GridError as exc:
            raise CommandError(exc.reason) from exc
        self.stdout.write(json.dumps(legs_to_json(legs, rules), indent=2))

    def _rules(self, opts) -> MarketRules:  # type: ignore[no-untyped-def]
        symbol = opts["symbol"]
        if opts.get("market_rules"):
            rules = rules_from_exchange_info(Path(opts["market_rules"]), symbol)
            if rules is None:
                raise CommandError(f"--symbol: {symbol} is not in {opts['market_rules']}")
            return rules
        try:
            rules = market_rule_resolve(exchange_name=opts["exchange"].lower(), raw=symbol)
        except Exception:  # no database reachable: fall back to the built-in set below
            rules = None
        if rules is None:
            rules = rules_from_exchange_info(BUILT_IN_RULES, symbol)
        if rules is None:
            raise CommandError(
                f"--symbol: no market rules for {symbol} on {opts['exchange']}; pass --market-rules exchangeInfo.json"
            )
        return rules
