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
def _clear_cache():  # type: ignore[no-untyped-def]
    """Rate limits and caches live in Redis: every test starts from an empty key space."""
    yield
    try:
        from django.core.cache import cache

        cache.clear()
    except Exception:  # tests without Django settings loaded
        pass


@pytest.fixture
def api_client():  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def user_factory(db):  # type: ignore[no-untyped-def]
    from accounts.tests.factories import UserFactory

    return UserFactory


@pytest.fixture
def trader(db):  # type: ignore[no-untyped-def]
    from accounts.tests.factories import UserFactory

    return UserFactory(role="trader")


@pytest.fixture
def auth_client(trader):  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(trader)
    client.user = trader
    return client


@pytest.fixture(scope="session")
def celery_worker_app():  # type: ignore[no-untyped-def]
    from tradingsite.celery import app

    return app


@pytest.fixture
def celery_worker(transactional_db, celery_worker_app):  # type: ignore[no-untyped-def]
    """A real celery worker (threads, real broker and result backend) for end-to-end tests."""
    from celery.contrib.testing.worker import start_worker

    celery_worker_app.loader.import_default_modules()
    with start_worker(
        celery_worker_app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=30
    ) as worker:
        yield worker
