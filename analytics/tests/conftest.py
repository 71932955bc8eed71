"""Fixtures of the analytics tests: a celery worker on the heavy queue only, as the heavy worker runs."""

from __future__ import annotations

import pytest


@pytest.fixture
def heavy_worker(transactional_db, celery_worker_app):
    """A real celery worker (threads, real broker and result backend) consuming only the `heavy` queue."""
    from celery.contrib.testing.worker import start_worker

    from analytics.tasks_framework import HEAVY_QUEUE

    celery_worker_app.loader.import_default_modules()
    queues = celery_worker_app.amqp.queues
    # A worker given queues narrows the app's own queue selection; put it back for later tests' workers.
    before = queues._consume_from
    try:
        with start_worker(
            celery_worker_app,
            pool="threads",
            concurrency=2,
            perform_ping_check=False,
            shutdown_timeout=30,
            queues=[HEAVY_QUEUE],
        ) as worker:
            yield worker
    finally:
        queues._consume_from = before
