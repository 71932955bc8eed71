from django.apps import AppConfig

from positions.hooks import engine_event_subscribe


class RiskengineConfig(AppConfig):
    name = "riskengine"

    def ready(self) -> None:
        # positions announces fills through its hooks and never imports riskengine
        # (docs/architecture.md#direction). Imported here: riskengine.hooks reads models, which the app
        # registry only allows once it is ready.
        from .hooks import on_engine_event

        engine_event_subscribe(on_engine_event)
