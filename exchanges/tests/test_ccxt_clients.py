"""ccxt clients of the adapter: one per account for the whole process, one TLS context, checks kept."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from exchanges.adapters.ccxt_adapter import CcxtAdapter, _run


def _adapter(key: str, **overrides: Any) -> CcxtAdapter:
    credentials = SimpleNamespace(api_key=key, api_secret="s" * 32, password=None)
    return CcxtAdapter(exchange_name="binance", ccxt_id="binance", credentials=credentials, config_overrides=overrides)


def _in_thread(make: Callable[[], Any]) -> Any:
    made: list[Any] = []
    worker = threading.Thread(target=lambda: made.append(make()))
    worker.start()
    worker.join()
    return made[0]


def test_one_client_per_account_whatever_the_thread():
    here = _adapter("key-a")._client()
    same_account_elsewhere = _in_thread(lambda: _adapter("key-a")._client())
    other_account = _adapter("key-b")._client()

    assert same_account_elsewhere is here  # a worker thread never builds a client another one has
    assert other_account is not here


def test_every_client_shares_one_verifying_tls_context():
    first, second = _adapter("key-c")._client(), _in_thread(lambda: _adapter("key-d")._client())
    assert first.ssl_context is second.ssl_context
    assert first.ssl_context.verify_mode == ssl.CERT_REQUIRED and first.ssl_context.check_hostname


def test_a_client_that_turns_verification_off_keeps_its_own_setting():
    client = _adapter("key-e", verify=False)._client()
    assert client.ssl_context is None  # ccxt then passes verify=False to aiohttp itself


def test_calls_from_many_threads_run_on_one_loop_and_a_loop_may_not_call_in() -> None:
    async def which_loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    loops = {_in_thread(lambda: _run(which_loop())) for _ in range(3)}
    assert len(loops) == 1

    async def from_a_loop() -> None:
        with pytest.raises(RuntimeError, match="call them from a worker thread"):
            _run(which_loop())

    asyncio.run(from_a_loop())
