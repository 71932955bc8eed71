"""`manage.py backtest`: one backtest from files, printed as one JSON object of metrics (docs/backtests.md#command).

Runs without services: no database, Redis or exchange is touched (candles, signals, config and market
rules all come from files; the market rules default to the simulator's built-in exchangeInfo).
"""

from __future__ import annotations

import json
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from analytics.backtest import CONTRACT_METRICS, BacktestError, BacktestRequest, CandleSeries, run_backtest
from analytics.backtest.files import (
    load_market_rules,
    read_candles,
    read_text,
    write_equity,
    write_fills,
    write_trades,
)
from analytics.backtest.signals import signals_from_csv, signals_from_tradingview, strategy_signals
from exchanges.candles.rules import TIMEFRAME_MS


def _json_object(text: str, field: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BacktestError({field: [f"not JSON: {exc}"]}) from None
    if not isinstance(value, dict):
        raise BacktestError({field: ["must be a JSON object"]})
    return value


class Command(BaseCommand):
    help = "Backtest the engine's rules over a candle file; prints one JSON object of metrics."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--candles", required=True, help="candle CSV (shared/data/candles format, gzip or not)")
        parser.add_argument("--symbol", required=True, help="e.g. BTC/USDT")
        parser.add_argument("--timeframe", required=True, choices=sorted(TIMEFRAME_MS, key=TIMEFRAME_MS.__getitem__))
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--strategy", help="a built-in strategy: rsi, macd, bollinger, volume, stochastic")
        source.add_argument("--signals", help="CSV of timestamp,action,price")
        source.add_argument("--tv-trades", help="TradingView strategy tester 'List of trades' export (CSV)")
        parser.add_argument("--params", help="the strategy's parameters as JSON")
        parser.add_argument("--config", help="engine config JSON file (validated like /api/config; defaults apply)")
        parser.add_argument("--exchange-info", help="a Binance exchangeInfo JSON file for the market rules")
        parser.add_argument("--detail-candles", help="lower-timeframe candles walked instead of each candle")
        parser.add_argument("--fee-rate", default="0.001", help="commission per fill (default 0.001)")
        parser.add_argument("--trades-out", help="write the deals as CSV")
        parser.add_argument("--fills-out", help="write every fill as CSV")
        parser.add_argument("--equity-out", help="write the equity curve as CSV")

    def handle(self, *args: Any, **opts: Any) -> None:
        started = time.perf_counter()
        try:
            result = self._run(opts)
        except BacktestError as exc:
            raise CommandError(str(exc)) from None
        metrics = {key: result.metrics[key] for key in CONTRACT_METRICS}
        metrics["seconds"] = round(time.perf_counter() - started, 3)
        metrics["signals"] = result.signal_outcomes
        for option, writer in (("fills_out", write_fills), ("trades_out", write_trades), ("equity_out", write_equity)):
            if opts.get(option):
                try:
                    writer(opts[option], result)
                except OSError as exc:
                    raise CommandError(f"--{option.replace('_', '-')}: {exc}") from None
        self.stdout.write(json.dumps(metrics))

    def _run(self, opts: dict[str, Any]) -> Any:
        symbol, timeframe = opts["symbol"].upper(), opts["timeframe"]
        if "/" not in symbol:
            raise BacktestError({"symbol": [f"{symbol!r}: give it as BASE/QUOTE, e.g. BTC/USDT"]})
        try:
            fee_rate = Decimal(opts["fee_rate"])
            if not fee_rate.is_finite() or not 0 <= fee_rate < 1:
                raise InvalidOperation
        except InvalidOperation:
            raise BacktestError({"fee_rate": ["must be a number from 0 to 1"]}) from None
        rules = load_market_rules(opts.get("exchange_info"), symbol)
        rows = read_candles(opts["candles"], timeframe=timeframe)
        series = CandleSeries.from_rows(rows)
        detail = None
        if opts.get("detail_candles"):
            detail_timeframe = _detail_timeframe(opts)
            detail_rows = read_candles(opts["detail_candles"], timeframe=detail_timeframe, field="detail_candles")
            detail = {symbol: CandleSeries.from_rows(detail_rows)}
        config = _json_object(read_text(opts["config"], field="config"), "config") if opts.get("config") else {}
        if opts.get("strategy"):
            params = _json_object(opts["params"], "params") if opts.get("params") else None
            signals = strategy_signals(opts["strategy"], params, series, symbol=symbol)
        elif opts.get("signals"):
            signals = signals_from_csv(read_text(opts["signals"], field="signals"), symbol=symbol)
        else:
            signals = signals_from_tradingview(read_text(opts["tv_trades"], field="tv_trades"), symbol=symbol)
        request = BacktestRequest(
            candles={symbol: series},
            timeframe=timeframe,
            signals=signals,
            config=config,
            market_rules={symbol: rules},
            fee_rate=fee_rate,
            detail_candles=detail,
        )
        return run_backtest(request)


def _detail_timeframe(opts: dict[str, Any]) -> str:
    """The detail file's timeframe, from the spacing of its first rows (it must divide the run's)."""
    text = read_text(opts["detail_candles"], field="detail_candles")
    lines = [line for line in text.splitlines()[1:4] if line.strip()]
    try:
        first, second = (int(line.split(",")[0]) for line in lines[:2])
    except ValueError:
        raise BacktestError({"detail_candles": ["row 2: expected timestamp_ms in the first column"]}) from None
    spacing = second - first
    for name, interval in TIMEFRAME_MS.items():
        if interval == spacing and TIMEFRAME_MS[opts["timeframe"]] % interval == 0 and name != opts["timeframe"]:
            return name
    raise BacktestError({"detail_candles": [f"candles {spacing} ms apart do not divide {opts['timeframe']}"]})
