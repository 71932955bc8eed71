"""The webhook's own ASGI route (`positions.ingress`) and the signal dispatcher (`positions.dispatch`).

The route is driven through the project's real ASGI application, as daphne calls it; the intake runs in
the route's own threads, so these tests use committed data (transactional database).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.db import connections

from positions.models import PositionGroup, WebhookSignal
from positions.tests.conftest import alert, post

pytestmark = pytest.mark.django_db(transaction=True)


def _asgi(method: str, path: str, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    from tradingsite.asgi import application

    async def call() -> dict:
        sent = [(b"host", b"localhost"), *(headers or [])]
        communicator = HttpCommunicator(application, method, path, body=body, headers=sent)
        return await communicator.get_response(timeout=20)

    return async_to_sync(call)()


def _json_headers(extra: list[tuple[bytes, bytes]] | None = None) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), *(extra or [])]


def test_a_webhook_post_is_answered_by_the_route_and_opens_a_group(trader, sim_config):
    body = json.dumps(alert(trader.webhook_secret)).encode()
    response = _asgi("POST", f"/api/webhook/{trader.pk}", body, _json_headers())

    payload = json.loads(response["body"])
    assert response["status"] == 202, payload
    assert payload["classification"] == "new_entry" and payload["status"] == "accepted"
    assert (b"x-content-type-options", b"nosniff") in response["headers"]
    group = PositionGroup.objects.get(pk=payload["group_id"])
    assert group.status == "waiting" and group.symbol == "BTC/USDT"
    signal = WebhookSignal.objects.get(pk=payload["signal_id"])
    assert signal.processing_status == "pending" and signal.body["secret"] == "[redacted]"


def test_the_routes_committed_events_reach_the_owner_from_the_event_loop(trader, sim_config):
    """The route sends the intake's live events itself, after the answer, gathered on its event loop."""
    from channels.testing import WebsocketCommunicator
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.tests.factories import UserFactory
    from tradingsite.asgi import application

    other = UserFactory()
    body = json.dumps(alert(trader.webhook_secret)).encode()

    async def scenario() -> None:
        sockets = []
        for user in (trader, other):
            socket = WebsocketCommunicator(
                application,
                f"/ws/updates/?token={AccessToken.for_user(user)}",
                headers=[(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")],
            )
            assert (await socket.connect())[0]
            assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
            sockets.append(socket)
        http = HttpCommunicator(
            application,
            "POST",
            f"/api/webhook/{trader.pk}",
            body=body,
            headers=[(b"host", b"localhost"), *_json_headers()],
        )
        answer = json.loads((await http.get_response(timeout=20))["body"])
        received = [await sockets[0].receive_json_from(timeout=5) for _ in range(2)]
        by_type = {event["type"]: event["data"] for event in received}
        assert by_type["signal.received"]["id"] == answer["signal_id"]
        assert by_type["signal.received"]["classification"] == "new_entry"
        assert by_type["group.updated"] == {**by_type["group.updated"], "id": answer["group_id"], "status": "waiting"}
        assert await sockets[1].receive_nothing(timeout=0.3)
        for socket in sockets:
            await socket.disconnect()

    async_to_sync(scenario)()


def test_an_announced_oversized_body_is_refused_unread_and_recorded(trader, sim_config):
    headers = _json_headers([(b"content-length", str(10 * 1024 * 1024).encode())])
    response = _asgi("POST", f"/api/webhook/{trader.pk}", b"{}", headers)

    assert response["status"] == 413
    assert json.loads(response["body"])["error"] == "payload_too_large"
    assert WebhookSignal.objects.get().http_status == 413


def test_other_methods_reach_django_and_get_405(trader):
    response = _asgi("GET", f"/api/webhook/{trader.pk}")
    assert response["status"] == 405


def test_the_route_honours_the_trusted_proxy_for_the_allowlist(trader, sim_config, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.WEBHOOK_ALLOWED_IPS = ["52.89.214.238"]
    body = json.dumps(alert(trader.webhook_secret)).encode()
    refused = _asgi("POST", f"/api/webhook/{trader.pk}", body, _json_headers([(b"x-forwarded-for", b"10.0.0.9")]))
    allowed = _asgi("POST", f"/api/webhook/{trader.pk}", body, _json_headers([(b"x-forwarded-for", b"52.89.214.238")]))

    assert refused["status"] == 403 and json.loads(refused["body"])["error"] == "ip_not_allowed"
    assert allowed["status"] == 202
    assert WebhookSignal.objects.filter(source_ip="52.89.214.238", http_status=202).count() == 1


# ------------------------------------------------------------------------------------------ dispatcher


def _wait(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_one_dispatcher_leads_sweeps_on_takeover_and_relays_announcements(client, trader, sim_config):
    """The celery enqueue is replaced by a list here; the worker's bootstep enqueues `process_signal`."""
    from positions.dispatch import SignalDispatcher

    first_id = post(client, trader, alert(trader.webhook_secret)).json()["signal_id"]
    params = connections["default"].get_connection_params()
    sent_a: list[str] = []
    sent_b: list[str] = []
    lock = threading.Lock()

    def sink(into: list[str]):
        def send(signal_id: str) -> None:
            with lock:
                into.append(signal_id)

        return send

    a = SignalDispatcher(params, dispatch=sink(sent_a))
    b = SignalDispatcher(params, dispatch=sink(sent_b))
    a.start()
    try:
        assert a.leading.wait(10)
        assert _wait(lambda: sent_a == [first_id])  # pending before anyone listened: swept on start
        b.start()
        time.sleep(1.5)
        assert not b.leading.is_set()  # a standby while `a` holds the lock

        second = alert(trader.webhook_secret, tv={"symbol": "ETHUSDT"}, strategy_info={"trade_id": "T-9"})
        second_id = post(client, trader, second).json()["signal_id"]
        assert _wait(lambda: sent_a == [first_id, second_id])  # NOTIFY on commit, relayed at once
        assert sent_b == []

        a.stop()
        assert b.leading.wait(10)  # takes over, and hands over everything still pending
        assert _wait(lambda: sorted(sent_b) == sorted([first_id, second_id]))
    finally:
        a.stop()
        b.stop()


def test_a_failed_enqueue_is_retried_by_a_sweep(client, trader, sim_config, monkeypatch):
    """The broker refuses the first enqueue: the signal is handed over again a few seconds later."""
    from positions import dispatch

    monkeypatch.setattr(dispatch, "RETRY_S", 0.5)
    params = connections["default"].get_connection_params()
    attempts: list[str] = []

    def flaky_broker(signal_id: str) -> None:
        attempts.append(signal_id)
        if len(attempts) == 1:
            raise ConnectionError("broker unreachable")

    dispatcher = dispatch.SignalDispatcher(params, dispatch=flaky_broker)
    dispatcher.start()
    try:
        assert dispatcher.leading.wait(10)
        signal_id = post(client, trader, alert(trader.webhook_secret)).json()["signal_id"]
        assert _wait(lambda: attempts.count(signal_id) >= 2)
    finally:
        dispatcher.stop()


def test_a_signal_announces_itself_when_it_turns_pending_and_only_then(client, trader, sim_config):
    """The table's trigger (migration 0005): an insert or update that makes a row pending notifies the
    dispatcher's channel with its id on commit; other rows and other updates do not."""
    import psycopg

    from positions.dispatch import CHANNEL

    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        pending = post(client, trader, alert(trader.webhook_secret)).json()["signal_id"]
        exit_id = post(
            client,
            trader,
            alert(
                trader.webhook_secret,
                tv={"symbol": "ETHUSDT", "action": "sell"},
                execution_intent={"type": "exit", "side": "sell"},
                strategy_info={"trade_id": "X1"},
            ),
        ).json()["signal_id"]  # an exit without a position: ignored, never pending
        WebhookSignal.objects.filter(pk=pending).update(reason="touched")  # not a change to pending
        WebhookSignal.objects.filter(pk=exit_id).update(processing_status="pending")
        heard = [notice.payload for notice in listener.notifies(timeout=2, stop_after=5)]
    assert heard == [pending, exit_id]


def test_a_copy_through_the_route_is_rolled_back_and_stored_as_a_duplicate(trader, sim_config):
    """The route's driver runs the intake's rollback step: the copy's group is undone, the copy recorded."""
    body = json.dumps(alert(trader.webhook_secret)).encode()
    first = _asgi("POST", f"/api/webhook/{trader.pk}", body, _json_headers())
    copy = _asgi("POST", f"/api/webhook/{trader.pk}", body, _json_headers())

    assert first["status"] == 202 and json.loads(first["body"])["classification"] == "new_entry"
    assert copy["status"] == 200 and json.loads(copy["body"])["status"] == "duplicate"
    assert PositionGroup.objects.count() == 1
    assert sorted(WebhookSignal.objects.values_list("status", flat=True)) == ["accepted", "duplicate"]


def test_symbols_the_routes_cached_index_cannot_answer_are_resolved_in_a_thread(trader, sim_config):
    """The route resolves tickers on its event loop from the per-process market index; when the index is
    stale, or does not know the ticker, the alert is read in a thread (the answer needs the ORM) and
    answered as usual."""
    from exchanges.selectors import market_symbol_index_clear

    def send(symbol: str, trade_id: str) -> tuple[int, dict]:
        body = json.dumps(alert(trader.webhook_secret, tv={"symbol": symbol}, strategy_info={"trade_id": trade_id}))
        response = _asgi("POST", f"/api/webhook/{trader.pk}", body.encode(), _json_headers())
        return response["status"], json.loads(response["body"])

    market_symbol_index_clear()
    stale = send("BINANCE:ETHUSDT", "S-1")  # the index is loaded in a thread
    cached = send("SOLUSDT", "S-2")  # and answers this one on the loop
    unknown = send("NOPEUSDT", "S-3")  # not in the index: the database decides

    assert stale[0] == 202 and stale[1]["classification"] == "new_entry"
    assert cached[0] == 202 and cached[1]["classification"] == "new_entry"
    assert unknown[0] == 400 and unknown[1]["error"] == "unknown_symbol" and "tv.symbol" in unknown[1]["fields"]
    assert sorted(PositionGroup.objects.values_list("symbol", flat=True)) == ["ETH/USDT", "SOL/USDT"]


def _backend_pid():
    return (yield "SELECT pg_backend_pid() AS pid", [])["pid"]


def test_the_routes_pool_reuses_a_connection_and_replaces_one_the_server_closed(trader):
    """A connection in steady use is reused without a check; one that sat idle is checked first, and one
    the server closed meanwhile is replaced rather than failing the alert."""
    from django.db import connection

    from core.sql import AsyncPool

    pool = AsyncPool(1, check_after_s=60)

    async def scenario() -> tuple[int, int, int]:
        first = await pool.run(_backend_pid())
        again = await pool.run(_backend_pid())
        await sync_to_async_terminate(first)  # the server ends the idle connection
        pool.check_after_s = 0  # and it sat idle past the check interval
        replaced = await pool.run(_backend_pid())
        return first, again, replaced

    def terminate(pid: int) -> None:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])

    from asgiref.sync import sync_to_async

    sync_to_async_terminate = sync_to_async(terminate)
    first, again, replaced = async_to_sync(scenario)()
    pool.close()
    assert again == first
    assert replaced != first


def test_a_burst_on_a_fresh_pool_opens_one_pool_of_its_size(trader):
    """The first alerts of a burst arrive together: they share the one pool being opened (seen in a
    benchmark: each opened its own, closing the others' connections under them)."""
    import asyncio

    from core.sql import AsyncPool

    pool = AsyncPool(3)

    async def burst() -> list[int]:
        return list(await asyncio.gather(*(pool.run(_backend_pid()) for _ in range(30))))

    pids = async_to_sync(burst)()
    pool.close()
    assert len(pids) == 30 and len(set(pids)) <= 3


def test_a_failing_step_rolls_back_and_the_connection_serves_the_next_alert(trader):
    from core.sql import AsyncPool

    pool = AsyncPool(1)

    def failing():
        yield "UPDATE accounts_user SET username = 'changed' WHERE id = %s", [trader.pk]
        raise RuntimeError("the intake broke")

    async def scenario() -> tuple[int, int]:
        first = await pool.run(_backend_pid())
        with pytest.raises(RuntimeError):
            await pool.run(failing())
        return first, await pool.run(_backend_pid())

    first, after = async_to_sync(scenario)()
    pool.close()
    assert after == first
    trader.refresh_from_db()
    assert trader.username != "changed"


def test_an_unreachable_database_is_a_503_that_says_a_resend_is_safe(client, trader, sim_config, monkeypatch):
    """Through the route and through Django's view: never a 500, and the sender learns that sending the
    alert again cannot open a second position (the idempotency key recognises a stored copy)."""
    from django.db import connections

    from bench.harness import free_port

    body = json.dumps(alert(trader.webhook_secret)).encode()
    connection = connections["default"]
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(connection.settings_dict, "PORT", str(free_port()))  # nothing listens there
    try:
        routed = _asgi("POST", f"/api/webhook/{trader.pk}", body, _json_headers())
        viewed = post(client, trader, body)
    finally:
        connection.close()
        monkeypatch.undo()

    for status, payload in ((routed["status"], json.loads(routed["body"])), (viewed.status_code, viewed.json())):
        assert status == 503
        assert payload["error"] == "unavailable" and "sending it again is safe" in payload["detail"]
    assert WebhookSignal.objects.count() == 0
    again = post(client, trader, body)  # the database is back: the resend is simply the signal
    assert again.status_code == 202 and again.json()["classification"] == "new_entry"


def test_a_guards_refusal_through_the_route_is_announced_after_the_answer(trader, sim_config):
    """The route's intake commits on its own connection: its guard refusal reaches the hooks' subscribers
    from the announcer thread once answered (docs/processes.md#notifications)."""
    from positions import hooks
    from positions.services.guards import guard_pause_set

    guard_pause_set(user=trader, paused=True, actor=trader)
    announced: list[hooks.EngineEvent] = []
    hooks.engine_event_subscribe(announced.append)
    try:
        body = json.dumps(alert(trader.webhook_secret)).encode()
        response = _asgi("POST", f"/api/webhook/{trader.pk}", body, _json_headers())
        assert json.loads(response["body"])["reason"] == "pause: trading is paused: no new groups"
        deadline = time.monotonic() + 5
        while not announced and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        hooks.engine_event_unsubscribe(announced.append)
    (event,) = announced
    assert (event.kind, event.user_id) == (hooks.GUARD_REFUSED, str(trader.pk))
    assert event.data["guard"] == "pause" and event.data["symbol"] == "BTC/USDT"
