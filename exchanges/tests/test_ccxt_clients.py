"""ccxt clients of the adapter: one TLS context for the whole process, certificate checks kept."""

from __future__ import annotations

import ssl
import threading
from types import SimpleNamespace

from exchanges.adapters.ccxt_adapter import CcxtAdapter


def _adapter(key: str, **overrides) -> CcxtAdapter:  # type: ignore[no-untyped-def]
    credentials = SimpleNamespace(api_key=key, api_secret="s" * 32, password=None)
    return CcxtAdapter(exchange_name="binance", ccxt_id="binance", credentials=credentials, config_overrides=overrides)


def test_clients_of_other_accounts_and_threads_share_one_verifying_tls_context():
    here = _adapter("key-a")._client()
    other_account = _adapter("key-b")._client()
    from_thread: list = []
    worker = threading.Thread(target=lambda: from_thread.append(_adapter("key-c")._client()))
    worker.start()
    worker.join()

    assert other_account is not here and from_thread[0] is not here  # clients stay per account and thread
    assert here.ssl_context is other_account.ssl_context is from_thread[0].ssl_context
    assert here.ssl_context.verify_mode == ssl.CERT_REQUIRED and here.ssl_context.check_hostname


def test_a_client_that_turns_verification_off_keeps_its_own_setting():
    client = _adapter("key-d", verify=False)._client()
    assert client.ssl_context is None  # ccxt then passes verify=False to aiohttp itself
