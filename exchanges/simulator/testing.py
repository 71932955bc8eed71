"""Helpers for tests and benchmarks: run the simulator as a subprocess and point ccxt at it.

    with SimulatorProcess() as sim:
        sim.create_account("key", "secret", {"USDT": "10000"})
        sim.set_price("BTCUSDT", "65000")
        exchange = ccxt.binance(ccxt_binance_config(sim.url, "key", "secret"))

Nothing here imports ccxt or Django, so production code may reuse :func:`ccxt_binance_config`.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_PREFIX = "simulator listening on "

# Every base URL key of ccxt 4.5.90's binance ``urls['api']`` with the path it ends in. All of them
# point at the simulator so that no call can reach the real Binance by accident; the ones the
# simulator does not serve answer 404 with a message that names the missing endpoint.
BINANCE_API_PATHS: dict[str, str] = {
    "public": "/api/v3",
    "private": "/api/v3",
    "v1": "/api/v1",
    "sapi": "/sapi/v1",
    "sapiV2": "/sapi/v2",
    "sapiV3": "/sapi/v3",
    "sapiV4": "/sapi/v4",
    "dapiPublic": "/dapi/v1",
    "dapiPrivate": "/dapi/v1",
    "dapiPrivateV2": "/dapi/v2",
    "dapiData": "/futures/data",
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
    "eapiPublic": "/eapi/v1",
    "eapiPrivate": "/eapi/v1",
    "papi": "/papi/v1",
    "papiV2": "/papi/v2",
}


def ccxt_binance_config(base_url: str, api_key: str, api_secret: str) -> dict[str, Any]:
    """Constructor config that makes the unmodified ccxt ``binance`` client use the simulator.

    The options keep ccxt on the endpoints the simulator serves: spot markets only (no futures
    exchangeInfo), no currencies and no margin pairs (both are ``sapi`` calls), no clock sync call,
    and open orders without a symbol allowed (ccxt refuses by default because of the weight).
    """
    base = base_url.rstrip("/")
    return {
        "apiKey": api_key,
        "secret": api_secret,
        "enableRateLimit": True,
        "urls": {"api": {name: base + path for name, path in BINANCE_API_PATHS.items()}},
        "options": {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "adjustForTimeDifference": False,
            "fetchOpenOrders": {"warnWithoutSymbol": False},
            "warnOnFetchOpenOrdersWithoutSymbol": False,
        },
    }


class SimulatorProcess:
    """Runs ``python -m exchanges.simulator`` on a free loopback port for the length of a ``with``.

    Also a small synchronous client of the control API (``/_sim/...``).
    """

    def __init__(
        self,
        *,
        exchange_info: str | Path | None = None,
        extra_args: list[str] | None = None,
        startup_timeout_s: float = 20.0,
        python: str = sys.executable,
    ) -> None:
        self.exchange_info = exchange_info
        self.extra_args = list(extra_args or [])
        self.startup_timeout_s = startup_timeout_s
        self.python = python
        self.url = ""
        self._process: subprocess.Popen[str] | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=200)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Start the process and wait until ``/api/v3/ping`` answers."""
        command = [self.python, "-m", "exchanges.simulator", "--host", "127.0.0.1", "--port", "0"]
        if self.exchange_info is not None:
            command += ["--exchange-info", str(self.exchange_info)]
        command += self.extra_args
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self._process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # keep draining output in the background so a chatty server can never block on the pipe
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.startup_timeout_s
        if not self._ready.wait(self.startup_timeout_s) or not self.url:
            self.stop()
            raise RuntimeError(f"simulator did not start:\n{self.output()}")
        while time.monotonic() < deadline:
            try:
                self._request("GET", "/api/v3/ping")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"simulator never answered ping:\n{self.output()}")

    def _read_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self._output.append(line.rstrip("\n"))
            if line.startswith(READY_PREFIX) and not self._ready.is_set():
                self.url = line[len(READY_PREFIX) :].strip()
                self._ready.set()
        self._ready.set()  # process ended: wake a waiting start()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within five seconds."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=2)

    @property
    def returncode(self) -> int | None:
        """Exit status once stopped (None while running)."""
        return None if self._process is None else self._process.poll()

    def output(self) -> str:
        """The last lines the process printed (for failure messages)."""
        return "\n".join(self._output)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- control API

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise RuntimeError(f"{method} {path} -> HTTP {error.code}: {detail}") from None

    def create_account(self, api_key: str, api_secret: str, balances: dict[str, str | Decimal]) -> Any:
        """Create or replace an account with these free balances."""
        return self._request(
            "POST",
            "/_sim/accounts",
            {"api_key": api_key, "api_secret": api_secret, "balances": {k: str(v) for k, v in balances.items()}},
        )

    def set_price(self, symbol: str, price: str | Decimal, partial_fill_ratio: str | Decimal | None = None) -> Any:
        """Move ``symbol`` to ``price``; resting orders the move crosses fill."""
        body: dict[str, Any] = {"symbol": symbol, "price": str(price)}
        if partial_fill_ratio is not None:
            body["partial_fill_ratio"] = str(partial_fill_ratio)
        return self._request("POST", "/_sim/price", body)

    def list_market(self, market: dict[str, Any]) -> Any:
        """List a market (one exchangeInfo ``symbols[]`` entry) or replace its rules, from now on."""
        return self._request("POST", "/_sim/markets", market)

    def delist_market(self, symbol: str) -> Any:
        """Take ``symbol`` off the exchange; its open orders are cancelled."""
        return self._request("DELETE", f"/_sim/markets/{urllib.parse.quote(symbol)}")

    def add_fault(
        self,
        match: str,
        action: str,
        *,
        count: int | None = None,
        delay_ms: int | None = None,
        probability: float | None = None,
        every: int | None = None,
        seed: int | None = None,
    ) -> Any:
        """Append a fault rule, e.g. ``add_fault("POST /api/v3/order", "error_500")``.

        Without ``probability``/``every`` the rule fires on the next ``count`` (default 1) matching
        requests; with one of them it fires on that share of them (at most ``count`` times if given).
        """
        rule: dict[str, Any] = {"match": match, "action": action}
        if count is None and probability is None and every is None:
            count = 1
        optional = {"count": count, "delay_ms": delay_ms, "probability": probability, "every": every, "seed": seed}
        rule.update({key: value for key, value in optional.items() if value is not None})
        return self._request("POST", "/_sim/faults", rule)

    def clear_faults(self) -> Any:
        """Drop every pending fault rule."""
        return self._request("DELETE", "/_sim/faults")

    def orders(self, api_key: str | None = None, *, fill_detail: bool = False) -> list[dict[str, Any]]:
        """Every order ever placed (optionally of one account); ``fill_detail`` adds trade ids and times."""
        params = {"api_key": api_key} if api_key else {}
        if fill_detail:
            params["fills"] = "detail"
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        result: list[dict[str, Any]] = self._request("GET", f"/_sim/orders{query}")
        return result

    def balances(self, api_key: str) -> dict[str, dict[str, str]]:
        """``{asset: {"free", "locked"}}`` of one account."""
        result: dict[str, dict[str, str]] = self._request(
            "GET", f"/_sim/balances?api_key={urllib.parse.quote(api_key)}"
        )
        return result

    def configure(self, **config: Any) -> Any:
        """Change ``market_slippage_bps``, ``partial_fill_ratio`` or ``weight_limit``."""
        return self._request(
            "POST", "/_sim/config", {k: (str(v) if isinstance(v, Decimal) else v) for k, v in config.items()}
        )

    def stats(self) -> dict[str, Any]:
        """Request counts and weight used since the last reset."""
        result: dict[str, Any] = self._request("GET", "/_sim/stats")
        return result

    def reset(self) -> Any:
        """Drop accounts, orders, faults, weights and config changes; keep markets and prices."""
        return self._request("POST", "/_sim/reset")
