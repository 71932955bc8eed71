import contextlib
import multiprocessing
from pathlib import Path
from typing import Any

from celery.signals import celeryd_after_setup, worker_process_init
from django.apps import AppConfig

from .ml import hooks as ml_hooks

HEAVY_QUEUE = "heavy"  # analytics.tasks_framework.HEAVY_QUEUE (that module imports models: not yet here)


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        # Imported once the app registry is ready (the kinds' modules import models): registers every
        # background task kind in the web processes and the workers alike.
        from . import task_kinds  # noqa: F401

        # The ML entry filter, asked by the intake about entries when a user enables it (docs/ml.md#filter).
        ml_hooks.register()
        celeryd_after_setup.connect(_heavy_worker_yields_the_cpu, weak=False)
        worker_process_init.connect(_pool_process_may_start_processes, weak=False)


def _heavy_worker_yields_the_cpu(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    """A worker that takes only the heavy queue gives trading the CPU first (docs/processes.md#heavy-worker).

    Its command line runs it under `nice 19`, but Linux's autogroups (one per session: `make run`, the
    bench and the tests start every process in a session of its own) weigh whole sessions against each
    other and nice orders processes only inside one; so the session's own nice is lowered as well. Its
    pool processes, forked afterwards, are in the same session.
    """
    if instance is None or set(instance.app.amqp.queues.consume_from) != {HEAVY_QUEUE}:
        return
    with contextlib.suppress(OSError):  # no autogroups (or no /proc): the process's nice is what there is
        Path("/proc/self/autogroup").write_text("19")


def _pool_process_may_start_processes(**kwargs: Any) -> None:
    """A prefork pool process (the heavy worker's) may start a process pool of its own (the optimizer
    does): billiard leaves its own kind of authentication key on the process, which the standard library
    refuses to hand to a new process ("Pickling an AuthenticationString object is disallowed"); the same
    key as the standard library's kind lets it."""
    current: Any = multiprocessing.current_process()  # billiard's process object, which billiard installs
    # Its `authkey` setter would wrap the key in billiard's class again: the standard one goes in directly.
    standard: Any = getattr(multiprocessing.process, "AuthenticationString")  # noqa: B009  (absent from the stubs)
    current._config["authkey"] = standard(bytes(current.authkey))
