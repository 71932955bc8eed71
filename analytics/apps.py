from django.apps import AppConfig

from .ml import hooks as ml_hooks


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        # Imported once the app registry is ready (the kinds' modules import models): registers every
        # background task kind in the web processes and the workers alike.
        from . import task_kinds  # noqa: F401
        # The ML entry filter, asked by the intake about entries when a user enables it (docs/ml.md#filter).
        ml_hooks.register()
