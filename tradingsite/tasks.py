from celery import shared_task

from accounts.logs import log_warning

from .health import system_health


@shared_task(name="tradingsite.health_check")
def health_check() -> str:
    report = system_health()
    if report["status"] != "healthy":
        bad = {name: c["status"] for name, c in report["components"].items() if c["status"] != "healthy"}
        log_warning("SYSTEM", f"System health is {report['status']}", details=bad)
    return report["status"]
