from django.core.management.base import BaseCommand

from tradingsite.schedules import sync_schedules


class Command(BaseCommand):
    help = "Create or update the periodic tasks defined in tradingsite/schedules.py."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        counts = sync_schedules()
        self.stdout.write(
            f"schedules: {counts['created']} created, {counts['updated']} updated, "
            f"{counts['disabled']} disabled, {counts['deleted']} deleted (no longer defined)"
        )
