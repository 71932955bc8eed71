from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications and daily reports"

    def ready(self) -> None:
        # positions fires engine events through its hook registry; it cannot import us (we sit above it).
        from positions.hooks import engine_event_subscribe  # the app registry is ready only now

        from .services import engine_event_enqueue  # imports models: only once the registry is ready

        engine_event_subscribe(engine_event_enqueue)
