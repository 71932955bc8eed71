"""Real celery end to end: on the embedded stack, and against external PostgreSQL + RabbitMQ when CI gives URLs."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_task_round_trip_through_a_real_worker(celery_worker):
    from accounts.tasks import ping

    assert ping.delay("hello").get(timeout=20) == "hello"


@pytest.mark.skipif(
    not (os.environ.get("TEST_EXTERNAL_DATABASE_URL") and os.environ.get("TEST_EXTERNAL_BROKER_URL")),
    reason="TEST_EXTERNAL_DATABASE_URL / TEST_EXTERNAL_BROKER_URL not set",
)
def test_worker_process_on_external_postgres_and_rabbitmq(tmp_path):
    """A separate worker process against the external servers completes a task that writes to the database."""
    import psycopg

    # A database of our own on the external server, never its default one.
    admin_url = os.environ["TEST_EXTERNAL_DATABASE_URL"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'tradingsite_external'").fetchone():
            conn.execute("CREATE DATABASE tradingsite_external")
    database_url = admin_url.rsplit("/", 1)[0] + "/tradingsite_external"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tradingsite.settings.test",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": os.environ["TEST_EXTERNAL_BROKER_URL"],
    }
    script = (
        "import django, uuid; django.setup();"
        "from django.core.management import call_command; call_command('migrate', verbosity=0);"
        "from accounts.tasks import cleanup_logs, ping; from accounts.models import SystemLog;"
        "from tradingsite.celery import app;"
        "assert app.connection_for_write().transport_cls in ('amqp', 'pyamqp') or 'amqp' in str(app.conf.broker_url);"
        "marker = str(uuid.uuid4());"
        "assert ping.delay(marker).get(timeout=60) == marker;"
        "print('OK', cleanup_logs.delay().get(timeout=60))"
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tradingsite",
            "worker",
            "-l",
            "warning",
            "--pool",
            "solo",
            "-n",
            f"external-{os.getpid()}@%h",
            "-Q",
            "celery",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(1)
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "OK" in result.stdout
    finally:
        worker.terminate()
        worker.wait(timeout=30)
