"""Command line of the simulator, shared by ``python -m exchanges.simulator`` and ``run_simulator``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from .engine import Engine, load_candles
from .server import build_app

DEFAULT_EXCHANGE_INFO = Path(__file__).with_name("default_exchange_info.json")
SHUTDOWN_TIMEOUT_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the simulator (the Django command registers the same ones)."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="port to bind; 0 picks a free one (default 8900)")
    parser.add_argument(
        "--exchange-info",
        type=Path,
        default=None,
        help="Binance GET /api/v3/exchangeInfo response to serve (default: the built-in set)",
    )
    parser.add_argument("--candles", type=Path, default=None, help="CSV (optionally gzip) of candles to replay")
    parser.add_argument("--symbol", default=None, help="exchange symbol the candles belong to, e.g. BTCUSDT")
    parser.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="replay speed: a candle of interval T lasts T/speed seconds (default 60)",
    )
    parser.add_argument(
        "--market-slippage-bps", type=Decimal, default=Decimal("0"), help="adverse slippage of market orders in bps"
    )
    parser.add_argument(
        "--partial-fill-ratio", type=Decimal, default=None, help="share of the rest filled per crossing price move"
    )


def load_exchange_info(path: Path | None) -> dict[str, Any]:
    """The exchangeInfo JSON to serve."""
    with (path or DEFAULT_EXCHANGE_INFO).open(encoding="utf-8") as handle:
        info: dict[str, Any] = json.load(handle)
    if not isinstance(info.get("symbols"), list):
        raise ValueError(f"{path} is not an exchangeInfo response: no symbols list")
    return info


async def serve(options: argparse.Namespace) -> None:
    """Run until SIGINT/SIGTERM, announcing the bound URL on stdout once ready."""
    engine = Engine(
        load_exchange_info(options.exchange_info),
        market_slippage_bps=options.market_slippage_bps,
        partial_fill_ratio=options.partial_fill_ratio,
    )
    replay = None
    if options.candles is not None:
        if options.symbol not in engine.markets:
            raise ValueError(f"--symbol {options.symbol} is not in the exchange info")
        replay = (options.symbol, load_candles(options.candles), options.speed)
    app = build_app(engine, replay=replay)
    # handler_cancellation: a client that hangs up (e.g. after a timeout fault) frees its handler
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await site.start()
    port = options.port
    server = site._server  # aiohttp exposes the bound sockets only here
    if isinstance(server, asyncio.Server) and server.sockets:
        port = server.sockets[0].getsockname()[1]
    print(f"simulator listening on http://{options.host}:{port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the simulator; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m exchanges.simulator", description="Binance-spot-compatible exchange simulator."
    )
    add_arguments(parser)
    options = parser.parse_args(argv)
    if (options.candles is None) != (options.symbol is None):
        parser.error("--candles and --symbol go together")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(serve(options))
    except (OSError, ValueError, KeyError) as error:
        # bad files, a taken port or an unknown symbol: one readable line, no traceback
        print(f"simulator failed: {error}", file=sys.stderr, flush=True)
        return 1
    return 0
