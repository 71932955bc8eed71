from typing import Any

from celery.signals import worker_init
from django.apps import AppConfig


class ExchangesConfig(AppConfig):
    name = "exchanges"

    def ready(self) -> None:
        worker_init.connect(_load_the_exchange_library, weak=False)


def _load_the_exchange_library(**kwargs: Any) -> None:
    """A worker calls exchanges: load ccxt as it starts, not while its first signals wait (about 1.4 s,
    seen as the slowest signal_to_order answers)."""
    # Imported here, in workers only: web processes never call an exchange and need not carry ccxt.
    from .adapters import ccxt_adapter  # noqa: F401
