from celery import shared_task
from django.conf import settings

from .services import logs_cleanup


@shared_task(name="accounts.cleanup_logs")
def cleanup_logs() -> dict[str, int]:
    return logs_cleanup(
        system_days=settings.LOG_RETENTION_DAYS["system"], audit_days=settings.LOG_RETENTION_DAYS["audit"]
    )


@shared_task(name="accounts.ping")
def ping(value: str = "pong") -> str:
    """A task that only proves the worker, broker and result backend work end to end."""
    return value
