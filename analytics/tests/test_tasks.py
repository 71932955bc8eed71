"""Background tasks (docs/tasks.md): submit, run on a real celery worker on the heavy queue, progress over a
real Channels websocket, revoke, per-user limits, another user's task, failures that leave no result.

A kind of the tests' own (`test-steps`) does a given number of steps, optionally failing while running
or while storing its result (after writing a `BacktestRun` in the result's transaction)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserClient, UserFactory
from analytics import tasks_framework
from analytics.models import BackgroundTask, BacktestRun
from analytics.tasks_framework import TaskContext, TaskInputError

KIND = "test-steps"


def _validate(owner: Any, data: dict[str, Any]) -> dict[str, Any]:
    steps = data.get("steps")
    if not isinstance(steps, int) or not 1 <= steps <= 1000:
        raise TaskInputError({"steps": ["a whole number from 1 to 1000"]})
    return {"steps": steps, "sleep": float(data.get("sleep", 0)), "fail": str(data.get("fail", ""))}


def _run(context: TaskContext) -> dict[str, Any]:
    for step in range(context.params["steps"]):
        time.sleep(context.params["sleep"])
        context.progress((step + 1) * 100 / context.params["steps"])
        if context.params["fail"] == "run" and step == 1:
            raise ValueError("boom at step 2")
    return {"steps": context.params["steps"]}


def _store(context: TaskContext, outcome: dict[str, Any]) -> dict[str, Any]:
    run = BacktestRun.objects.create(
        owner_id=context.owner_id, task_id=context.task_id, symbol="BTC/USDT", timeframe="1h", exchange_name="binance"
    )
    if context.params["fail"] == "store":
        raise RuntimeError("disk full")
    return {"backtest_id": str(run.pk), **outcome}


tasks_framework.task_kind_register(KIND, validate=_validate, run=_run, store=_store)


def _client(user) -> UserClient:
    client = UserClient()
    client.force_authenticate(user)
    return client


def _wait(client, task_id: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/tasks/{task_id}").json()
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"task still {body['status']}"
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_a_task_runs_on_the_heavy_worker_with_progress_over_the_websocket(heavy_worker) -> None:
    trader = UserFactory.create(role="trader")
    other = UserFactory.create(role="trader")
    client = _client(trader)

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
        from tradingsite.asgi import application

        sockets = []
        for user in (trader, other):
            socket = WebsocketCommunicator(
                application,
                f"/ws/updates/?token={AccessToken.for_user(user)}",
                headers=[(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")],
            )
            connected, _ = await socket.connect()
            assert connected
            assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
            sockets.append(socket)
        answer = await sync_to_async(client.post)(f"/api/tasks/{KIND}", {"steps": 6, "sleep": 0.25}, format="json")
        assert answer.status_code == 202, answer.content
        accepted = answer.json()
        events: list[dict[str, Any]] = []
        while not events or events[-1]["status"] not in ("SUCCESS", "FAILURE"):
            message = await sockets[0].receive_json_from(timeout=30)
            if message["type"] == "task.progress":
                events.append(message["data"])
        others_quiet = await sockets[1].receive_nothing(timeout=0.3)
        for socket in sockets:
            await socket.disconnect()
        return accepted, events, others_quiet

    accepted, events, others_quiet = asyncio.run(scenario())
    task_id = accepted["task_id"]
    assert accepted == {"task_id": task_id, "status": "PENDING", "status_url": f"/api/tasks/{task_id}"}
    assert {event["task_id"] for event in events} == {task_id}
    statuses = [event["status"] for event in events]
    assert statuses[0] == "PENDING" and statuses[1] == "STARTED" and statuses[-1] == "SUCCESS"
    assert "PROGRESS" in statuses
    progress = [event["progress"] for event in events]
    assert progress == sorted(progress) and progress[-1] == 100
    # 6 steps of 0.25 s, written at most every 0.5 s: fewer progress events than steps.
    assert statuses.count("PROGRESS") < 6
    assert others_quiet, "another user heard of this task"

    body = client.get(accepted["status_url"]).json()
    assert body["status"] == "SUCCESS" and body["progress"] == 100 and body["kind"] == KIND
    assert body["result"]["steps"] == 6 and "error" not in body
    assert body["created_at"] <= body["started_at"] <= body["finished_at"]
    run = BacktestRun.objects.get(pk=body["result"]["backtest_id"])
    assert run.task_id is not None and str(run.task_id) == task_id
    assert [item["task_id"] for item in client.get("/api/tasks").json()] == [task_id]


@pytest.mark.django_db(transaction=True)
def test_revoking_a_running_task_stops_it_and_stores_nothing(heavy_worker) -> None:
    trader = UserFactory.create(role="trader")
    client = _client(trader)
    task_id = client.post(f"/api/tasks/{KIND}", {"steps": 200, "sleep": 0.05}, format="json").json()["task_id"]
    _wait(client, task_id, {"PROGRESS"})
    answer = client.delete(f"/api/tasks/{task_id}")
    assert answer.status_code == 202 and answer.json()["revoke_requested"] is True
    body = _wait(client, task_id, {"REVOKED", "SUCCESS", "FAILURE"}, timeout=10)
    assert body["status"] == "REVOKED" and body["error"] == "revoked while running"
    assert body["progress"] < 100 and "result" not in body
    assert not BacktestRun.objects.exists()
    again = client.delete(f"/api/tasks/{task_id}")
    assert again.status_code == 409 and again.json()["error"] == "conflict"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("fail", "error"), [("run", "ValueError: boom at step 2"), ("store", "RuntimeError: disk full")]
)
def test_a_failed_task_stores_its_error_and_no_result(heavy_worker, fail: str, error: str) -> None:
    client = _client(UserFactory.create(role="trader"))
    task_id = client.post(f"/api/tasks/{KIND}", {"steps": 3, "fail": fail}, format="json").json()["task_id"]
    body = _wait(client, task_id, {"SUCCESS", "FAILURE"})
    assert body["status"] == "FAILURE" and body["error"] == error and "result" not in body
    assert body["finished_at"] is not None
    # "store" wrote a BacktestRun in the transaction that failed: it was rolled back with it.
    assert not BacktestRun.objects.exists()
    assert BackgroundTask.objects.get(pk=task_id).result is None


def test_a_pending_task_is_revoked_at_once(db) -> None:
    client = _client(UserFactory.create(role="trader"))
    task_id = client.post(f"/api/tasks/{KIND}", {"steps": 3}, format="json").json()["task_id"]
    answer = client.delete(f"/api/tasks/{task_id}")
    assert answer.status_code == 202
    assert answer.json()["status"] == "REVOKED" and answer.json()["error"] == "revoked before it started"
    # The worker that takes its message later leaves it alone.
    tasks_framework.task_execute(task_id=task_id)
    assert BackgroundTask.objects.get(pk=task_id).status == "REVOKED"


def test_at_most_n_unfinished_tasks_per_user(db, settings) -> None:
    settings.TASK_MAX_ACTIVE_PER_USER = 2
    alice, bob = _client(UserFactory.create(role="trader")), _client(UserFactory.create(role="trader"))
    first = alice.post(f"/api/tasks/{KIND}", {"steps": 1}, format="json")
    assert first.status_code == 202
    assert alice.post(f"/api/tasks/{KIND}", {"steps": 1}, format="json").status_code == 202
    third = alice.post(f"/api/tasks/{KIND}", {"steps": 1}, format="json")
    assert third.status_code == 429
    assert third.json()["error"] == "too_many_tasks" and "at most 2" in third.json()["detail"]
    assert bob.post(f"/api/tasks/{KIND}", {"steps": 1}, format="json").status_code == 202
    alice.delete(f"/api/tasks/{first.json()['task_id']}")
    assert alice.post(f"/api/tasks/{KIND}", {"steps": 1}, format="json").status_code == 202


def test_another_users_task_and_backtest_are_not_found(db) -> None:
    alice_user = UserFactory.create(role="trader")
    alice, bob = _client(alice_user), _client(UserFactory.create(role="trader"))
    task_id = alice.post(f"/api/tasks/{KIND}", {"steps": 1}, format="json").json()["task_id"]
    run = BacktestRun.objects.create(owner=alice_user, symbol="BTC/USDT", timeframe="1h", exchange_name="binance")
    assert bob.get(f"/api/tasks/{task_id}").status_code == 404
    assert bob.delete(f"/api/tasks/{task_id}").status_code == 404
    assert bob.get("/api/tasks").json() == []
    assert bob.get(f"/api/backtests/{run.pk}").status_code == 404
    assert bob.get("/api/backtests").json() == []
    assert alice.get(f"/api/backtests/{run.pk}").status_code == 200
    assert BackgroundTask.objects.get(pk=task_id).status == "PENDING"


def test_bad_requests_name_the_field_and_unknown_kinds_are_400(db) -> None:
    client = _client(UserFactory.create(role="trader"))
    answer = client.post(f"/api/tasks/{KIND}", {"steps": 0}, format="json")
    assert answer.status_code == 400 and answer.json()["fields"] == {"steps": ["a whole number from 1 to 1000"]}
    answer = client.post(f"/api/tasks/{KIND}", ["not", "an", "object"], format="json")
    assert answer.status_code == 400
    answer = client.post("/api/tasks/nonsense", {}, format="json")
    assert answer.status_code == 400 and answer.json()["error"] == "unknown_task_kind"
    assert "nonsense" in answer.json()["detail"]
    for kind in ("backtest", "optimize", "train", "bulk-analysis"):  # registered or not: never a 500
        assert client.post(f"/api/tasks/{kind}", {}, format="json").status_code == 400
    assert not BackgroundTask.objects.exists()


def test_viewers_may_read_but_not_start_tasks(db) -> None:
    viewer = _client(UserFactory.create(role="viewer"))
    assert viewer.post(f"/api/tasks/{KIND}", {"steps": 1}, format="json").status_code == 403
    assert viewer.get("/api/tasks").status_code == 200


def test_heavy_tasks_are_routed_to_the_heavy_queue_which_only_the_heavy_worker_takes() -> None:
    from tradingsite import stack
    from tradingsite.celery import app

    assert app.amqp.router.route({}, tasks_framework.RUN_TASK)["queue"].name == tasks_framework.HEAVY_QUEUE
    heavy = stack.heavy_worker_argv(concurrency=2)
    assert heavy[heavy.index("-Q") + 1] == "heavy" and heavy[heavy.index("--pool") + 1] == "prefork"
    assert stack.TRADING_QUEUE == app.conf.task_default_queue != stack.HEAVY_QUEUE


def test_a_started_task_whose_worker_died_is_revoked_at_once(db) -> None:
    client = _client(UserFactory.create(role="trader"))
    task_id = client.post(f"/api/tasks/{KIND}", {"steps": 3}, format="json").json()["task_id"]
    BackgroundTask.objects.filter(pk=task_id).update(status="PROGRESS", progress=40)  # its worker is gone
    answer = client.delete(f"/api/tasks/{task_id}")
    assert answer.status_code == 202
    assert answer.json()["status"] == "REVOKED" and answer.json()["error"] == "revoked; no worker was running it"


def test_uploaded_files_are_not_repeated_in_the_task_list(db) -> None:
    user = UserFactory.create(role="trader")
    params = {"source": "signals_csv", "signals_csv": "é" * 10}
    BackgroundTask.objects.create(owner=user, kind="backtest", params=params)
    listed = _client(user).get("/api/tasks").json()
    assert listed[0]["params"] == {"source": "signals_csv", "signals_csv": "<20 bytes>"}


def test_the_admin_lists_tasks_and_runs_and_revokes(db) -> None:
    from django.test import Client

    owner = UserFactory.create(role="trader")
    task = BackgroundTask.objects.create(owner=owner, kind=KIND, params={"steps": 1})
    BacktestRun.objects.create(owner=owner, task=task, symbol="BTC/USDT", timeframe="1h", exchange_name="binance")
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, role="admin", is_superuser=True))
    assert client.get("/admin/analytics/backgroundtask/").status_code == 200
    assert client.get(f"/admin/analytics/backgroundtask/{task.pk}/change/").status_code == 200
    assert client.get("/admin/analytics/backtestrun/").status_code == 200
    answer = client.post(
        "/admin/analytics/backgroundtask/", {"action": "revoke", "_selected_action": [str(task.pk)]}, follow=True
    )
    assert answer.status_code == 200
    task.refresh_from_db()
    assert task.status == "REVOKED"
