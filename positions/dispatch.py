"""Accepted signals reach celery through PostgreSQL: NOTIFY on commit, one dispatcher per cluster.

A signal row that becomes pending (stored so by the webhook intake, or promoted from the queue) is
announced by a trigger on its table (`pg_notify`, migration 0005), so the announcement is part of the
commit (never sent for a rolled-back signal, never lost between commit and an enqueue call), nobody
writing such a row can forget it, and the web process spends nothing on it: publishing a celery
message costs more CPU than the rest of the webhook's intake. A dispatcher thread in a celery worker
LISTENs and turns each announcement into a `process_signal` task; celery then does what it does
(threads, retries, acks_late).

- One dispatcher at a time: the one holding a session advisory lock. The others wait and take over when
  its connection goes (a killed worker's lock goes with it).
- On taking over, after every reconnect, and a few seconds after an enqueue failed (broker down), the
  dispatcher hands every still-pending signal to celery: announcements made while nobody listened are
  not kept by PostgreSQL. A signal that was already
  dispatched may so be processed twice; processing is idempotent (see `processing.signal_process`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from celery import bootsteps

from . import jobs
from .choices import ProcessingStatus

logger = logging.getLogger(__name__)

CHANNEL = "positions_signal"
LEADER_LOCK_KEY = 0x5347_4E4C_4450  # "SGNLDP": the advisory lock of the active dispatcher
WAIT_S = 1.0  # how often a dispatcher checks for stop (and a standby for leadership)
RETRY_S = 5.0


def _dispatch_to_celery(signal_id: str) -> None:
    jobs.enqueue(jobs.PROCESS_SIGNAL, signal_id)


class SignalDispatcher(threading.Thread):
    def __init__(self, connect_kwargs: dict[str, Any], dispatch: Callable[[str], None] = _dispatch_to_celery):
        super().__init__(name="signal-dispatcher", daemon=True)
        self._connect_kwargs = connect_kwargs
        self._dispatch = dispatch
        self._stopping = threading.Event()
        self._failed = False  # an enqueue failed since the last sweep
        self._swept_at = 0.0
        self.leading = threading.Event()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.join(timeout)

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(**self._connect_kwargs, autocommit=True) as conn:
                    self._serve(conn)
            except psycopg.Error as exc:
                logger.warning("signal dispatcher: %s; retrying in %.0f s", exc, RETRY_S)
            finally:
                self.leading.clear()
            self._stopping.wait(RETRY_S)

    def _serve(self, conn: psycopg.Connection) -> None:
        while not _leader_lock_try(conn):
            if self._stopping.wait(WAIT_S):
                return
        conn.execute(f"LISTEN {CHANNEL}")
        self.leading.set()
        self._sweep(conn)
        while not self._stopping.is_set():
            for notice in conn.notifies(timeout=WAIT_S):
                self._send(notice.payload)
            if self._failed and time.monotonic() - self._swept_at >= RETRY_S:
                self._sweep(conn)  # an enqueue failed (broker down?): hand over what is still pending

    def _sweep(self, conn: psycopg.Connection) -> None:
        from .models import WebhookSignal  # the dispatcher starts as a bootstep, before the app registry is ready

        self._failed, self._swept_at = False, time.monotonic()
        rows = conn.execute(
            f"SELECT id FROM {WebhookSignal._meta.db_table} WHERE processing_status = %s ORDER BY received_at",
            [str(ProcessingStatus.PENDING)],
        ).fetchall()
        for (signal_id,) in rows:
            self._send(str(signal_id))
        if rows:
            logger.info("signal dispatcher: %d pending signal(s) handed to celery on start", len(rows))

    def _send(self, signal_id: str) -> None:
        try:
            self._dispatch(signal_id)
        except Exception:  # a broker hiccup must not kill the dispatcher; a sweep finds the signal again
            self._failed = True
            logger.exception("signal dispatcher: could not enqueue signal %s", signal_id)


class DispatcherStep(bootsteps.StartStopStep):
    """Runs a `SignalDispatcher` in every celery worker (only one of them leads at a time)."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.dispatcher: SignalDispatcher | None = None

    def include_if(self, worker: Any) -> bool:
        """Only a worker that takes trading work (the default queue) runs a dispatcher: the heavy worker
        (queue `heavy` only, docs/processes.md#heavy-worker) has no part in handing signals on."""
        return worker.app.conf.task_default_queue in worker.app.amqp.queues.consume_from

    def start(self, worker: Any) -> None:
        from django.db import connections

        self.dispatcher = SignalDispatcher(connections["default"].get_connection_params())
        self.dispatcher.start()

    def stop(self, worker: Any) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None

    # A worker told to terminate (not to stop) calls this instead; the dispatcher must go either way, or
    # its connection keeps the leader lock.
    terminate = stop


def _leader_lock_try(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", [LEADER_LOCK_KEY]).fetchone()
    assert row is not None  # a SELECT of one value returns one row
    return bool(row[0])
