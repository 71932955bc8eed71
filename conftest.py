"""Fixtures shared by every app's tests: real PostgreSQL/Redis (from the stack), the simulator, a celery worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("SHARED_DATA_DIR", Path(__file__).resolve().parent.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a clean skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _decimal_context():
    """Each test starts from the decimal context the one before found: a library that changes its thread's
    context (ccxt's synchronous client sets half-up rounding) must not change later tests' arithmetic."""
    import decimal

    saved = decimal.getcontext().copy()
    yield
    decimal.setcontext(saved)


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate limits and caches live in Redis: every test starts from an empty key space."""
    yield
    try:
        from django.core.cache import cache

        cache.clear()
    except Exception:  # tests without Django settings loaded
        pass


@pytest.fixture(autouse=True)
def _close_async_pools():
    """The webhook route's own database connections (`sql.AsyncPool`) end with the test that opened
    them: each test runs its own event loop, and the test database is dropped at the end."""
    yield
    try:
        from core.sql import close_async_pools
    except Exception:  # tests without Django settings loaded
        return
    close_async_pools()


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def user_factory(db):
    from accounts.tests.factories import UserFactory

    return UserFactory


@pytest.fixture
def trader(db):
    from accounts.tests.factories import UserFactory

    return UserFactory(role="trader")


@pytest.fixture
def auth_client(trader):
    from accounts.tests.factories import UserClient

    client = UserClient()
    client.force_authenticate(trader)
    client.user = trader
    return client


@pytest.fixture(scope="session")
def celery_worker_app():
    from tradingsite.celery import app

    return app


@pytest.fixture
def celery_worker(transactional_db, celery_worker_app):
    """A real celery worker (threads, real broker and result backend) for end-to-end tests."""
    from celery.contrib.testing.worker import start_worker
    from django.conf import settings

    celery_worker_app.loader.import_default_modules()
    # The project's broker and result store, whatever an earlier test pointed the app at (the reliability
    # test runs on its own Redis): a worker on a stale URL would fail every later test.
    celery_worker_app.close()
    # close() forgets the producer pool only together with the app's own connection pool; `send_task` builds
    # that producer pool from kombu's global pools, so one made for an earlier URL can outlive close().
    celery_worker_app.amqp._producer_pool = None
    celery_worker_app.conf.update(broker_url=settings.CELERY_BROKER_URL, result_backend=settings.CELERY_RESULT_BACKEND)
    with start_worker(
        celery_worker_app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=30
    ) as worker:
        yield worker


# --------------------------------------------------------------------------------- exchange simulator


@pytest.fixture(scope="session")
def simulator():
    """One Binance-compatible simulator process per test session (per xdist worker), on a free port.

    Serves ../shared/data/exchange/binance_exchangeInfo_subset.json when present, else the built-in set.
    """
    from exchanges.simulator.testing import SimulatorProcess

    info = SHARED_DATA / "exchange" / "binance_exchangeInfo_subset.json"
    with SimulatorProcess(exchange_info=info if info.is_file() else None) as sim:
        yield sim


SIMULATOR_START_PRICES = {"BTCUSDT": "65000", "ETHUSDT": "3500", "SOLUSDT": "150"}


@pytest.fixture
def simulator_account(simulator, settings, trader):
    """A fresh simulator account (10000 USDT, 1 BTC, 10 ETH) and the trader's `simulator` config for it.

    `settings.SIMULATOR_URL` points at the session's simulator; prices start at SIMULATOR_START_PRICES;
    faults are cleared afterwards. Returns `exchanges.tests.support.SimulatorAccount` (config, keys,
    simulator, `adapter()`).
    """
    from exchanges.tests.support import make_simulator_account

    settings.SIMULATOR_URL = simulator.url
    settings.EXCHANGE_TIMEOUT_MS = 1500  # timeout faults hold the response for 30 s: give up quickly
    for symbol, price in SIMULATOR_START_PRICES.items():
        simulator.set_price(symbol, price)
    account = make_simulator_account(simulator, user=trader)
    yield account
    account.close()
    simulator.clear_faults()


@pytest.fixture(autouse=True)
def _forget_memoised_market_rules():
    """Each process keeps market rules in memory (`exchanges.rules`); every test starts without them."""
    yield
    try:
        from exchanges.rules import market_rules_forget_local

        market_rules_forget_local()
    except Exception:  # tests without Django settings loaded
        pass
