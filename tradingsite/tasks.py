from celery import shared_task

from . import metrics  # noqa: F401  (its celery signal handlers time every task this worker runs)
from .backup import backup_scheduled
from .health import beat_heartbeat_record, health_watch


@shared_task(name="tradingsite.health_check")
def health_check() -> str:
    """The 15-minute check: tells operators when the engine's health changed (docs/processes.md#health)."""
    return str(health_watch()["status"])


@shared_task(name="tradingsite.beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> None:
    """Sent by beat every 30 s: its arrival proves beat, the broker and a worker all run."""
    beat_heartbeat_record()


@shared_task(name="tradingsite.backup")
def backup() -> str:
    """The 03:00 database backup, when BACKUP_DIR is set (docs/processes.md#backups)."""
    return backup_scheduled()
