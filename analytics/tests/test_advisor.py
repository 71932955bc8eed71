"""The advisor (docs/advisor.md) against a local stand-in for an OpenAI-compatible API started by each test:
a good answer is stored and shown (page and API); garbage, HTTP errors and a timeout are stored failures;
the monthly cap skips a review before anything is sent; off sends nothing; actions run only when the
operator allowed them; the prompt carries no secret; the admin shows the key masked; key rotation covers it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserClient, UserFactory
from analytics.advisor import rules, selectors, services
from analytics.advisor.models import AdvisorReview, AdvisorSettings, ReviewStatus
from analytics.ml.models import FilterModel, ModelStatus
from analytics.models import BackgroundTask
from analytics.tasks import advisor_daily
from analytics.tasks_framework import HEAVY_QUEUE
from analytics.tests.advisor_server import StandInLLM
from analytics.tests.ml_support import csv_lines, cyclic_rows
from exchanges import crypto
from exchanges.candles import services as candle_services
from exchanges.tests.factories import ExchangeConfigFactory
from positions.models import PositionGroup
from tradingsite.secrets import secrets_rotate_all

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)
DAY = date(2026, 11, 24)
API_KEY = "sk-advisor-test-KEY-9f3e"
EXCHANGE_KEY = "exchange-api-key-0123456789"
EXCHANGE_SECRET = "exchange-api-secret-abcdef"
GOOD: dict[str, Any] = {
    "summary": "A quiet day: one BTC deal closed in profit.",
    "observations": ["Drawdown stays under 1 %.", "The BTC/USDT 1h filter scores near chance."],
    "actions": [{"kind": "retrain", "symbol": "BTCUSDT", "timeframe": "1h", "reason": "its score is 0.52"}],
}


@pytest.fixture
def llm() -> Iterator[StandInLLM]:
    with StandInLLM() as server:
        yield server


@pytest.fixture
def trader() -> Any:
    """A user who trades BTC/USDT 1h, with exchange keys, and a deployed filter model for that market."""
    config = ExchangeConfigFactory.create(api_key=EXCHANGE_KEY, api_secret=EXCHANGE_SECRET)
    PositionGroup.objects.create(
        user=config.user, exchange_config=config, symbol="BTC/USDT", timeframe="1h", status="closed", closed_at=NOW
    )
    FilterModel.objects.create(
        exchange_name="binance", symbol="BTC/USDT", timeframe="1h", horizon=5, score=0.52, booster=b"-",
        status=ModelStatus.DEPLOYED,
    )  # fmt: skip
    return config.user


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory.create(role="admin", is_staff=True, is_superuser=True))
    return client


def _enable(url: str, **values: Any) -> AdvisorSettings:
    settings: dict[str, Any] = {
        "enabled": True,
        "base_url": url,
        "model": "stand-in-1",
        "price_input_per_1k_usd": Decimal("0.01"),
        "price_output_per_1k_usd": Decimal("0.03"),
        "timeout_seconds": 5,
    } | values
    return services.advisor_settings_update(actor=None, api_key=API_KEY, **settings)


def _review(user: Any) -> AdvisorReview:
    return AdvisorReview.objects.get(user=user, day=DAY)


def test_a_good_answer_is_stored_and_shown(llm: StandInLLM, trader: Any) -> None:
    _enable(llm.url)
    llm.answer_review(GOOD, prompt_tokens=1000, completion_tokens=200)
    counts = services.advisor_review_all(now=NOW)
    assert counts["users"] == 1 and counts["ok"] == 1

    (request,) = llm.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    body = request.body
    assert body["model"] == "stand-in-1" and body["response_format"] == {"type": "json_object"}
    sent = json.loads(body["messages"][-1]["content"])
    assert sent["day"] == "2026-11-24" and sent["markets"] == [{"symbol": "BTC/USDT", "timeframe": "1h"}]
    assert sent["models"][0]["score"] == 0.52 and "realized_pnl" in sent and "drawdown" in sent

    review = _review(trader)
    assert review.status == ReviewStatus.OK and review.error == ""
    assert review.output == GOOD | {"actions": [GOOD["actions"][0]]}
    assert (review.prompt_tokens, review.completion_tokens) == (1000, 200)
    assert review.cost_usd == Decimal("0.016")  # 1000/1000 × 0.01 + 200/1000 × 0.03
    assert review.input == sent

    client = Client()
    client.force_login(trader)
    html = client.get("/performance/").content.decode()
    assert GOOD["summary"] in html and "Drawdown stays under 1 %." in html and "acting is off" in html

    api = UserClient()
    api.force_authenticate(trader)
    (shown,) = api.get("/api/advisor/reviews").json()["reviews"]
    assert shown["summary"] == GOOD["summary"] and shown["status"] == "ok" and shown["cost_usd"] == "0.016"
    assert shown["actions"][0]["done"] is False
    stranger = UserClient()
    stranger.force_authenticate(UserFactory.create())
    assert stranger.get("/api/advisor/reviews").json() == {"reviews": []}
    assert api.get("/api/advisor/reviews?limit=abc").json()["fields"]["limit"]

    services.advisor_review_all(now=NOW)  # the day has its review: nothing sent again
    assert len(llm.requests) == 1


def test_the_prompt_holds_no_secret(llm: StandInLLM, trader: Any) -> None:
    _enable(llm.url)
    services.advisor_review_all(now=NOW)
    (request,) = llm.requests
    body = request.raw.decode()
    config = trader.exchange_configs.get()
    for secret in (
        API_KEY,
        EXCHANGE_KEY,
        EXCHANGE_SECRET,
        config.api_key_encrypted,
        trader.webhook_secret,
        trader.email,
        trader.username,
    ):
        assert secret not in body
    assert _review(trader).status == ReviewStatus.OK


@pytest.mark.parametrize(
    ("status", "payload", "reason"),
    [
        (200, b"<html>gateway</html>", "the answer is not JSON"),
        (200, json.dumps({"choices": []}).encode(), "the answer has no choices"),
        (200, json.dumps({"choices": [{"message": {"content": "I think it went well"}}]}).encode(), "not JSON"),
        (200, json.dumps({"choices": [{"message": {"content": '{"summary": 3}'}}]}).encode(), "summary must be"),
        (200, json.dumps({"choices": [{"message": {"content": '{"summary": "x", "actions": {}}'}}]}).encode(),
         "actions must be a list"),
        (500, b'{"error": "overloaded"}', "HTTP 500"),
        (401, json.dumps({"error": f"bad key {API_KEY}"}).encode(), "HTTP 401"),
    ],
)  # fmt: skip
def test_garbage_and_errors_are_stored_failures(
    llm: StandInLLM, trader: Any, status: int, payload: bytes, reason: str
) -> None:
    _enable(llm.url)
    llm.answer_raw(status, payload)
    counts = services.advisor_review_all(now=NOW)
    assert counts["failed"] == 1
    review = _review(trader)
    assert review.status == ReviewStatus.FAILED and reason in review.error and review.output is None
    assert API_KEY not in review.error
    assert review.finished_at is not None
    assert not BackgroundTask.objects.exists()


def test_a_timeout_is_a_stored_failure(llm: StandInLLM, trader: Any) -> None:
    _enable(llm.url, timeout_seconds=1)
    llm.hang(2.5)
    services.advisor_review_all(now=NOW)
    review = _review(trader)
    assert review.status == ReviewStatus.FAILED and "within 1 s" in review.error
    assert review.cost_usd == review.estimated_cost_usd > 0  # it may have been billed: the estimate counts


def test_the_monthly_cap_skips_a_review_before_sending(llm: StandInLLM, trader: Any) -> None:
    _enable(llm.url, monthly_cost_cap_usd=Decimal("1"))
    other = UserFactory.create()
    AdvisorReview.objects.create(
        user=other, day=date(2026, 11, 3), status=ReviewStatus.OK, cost_usd=Decimal("0.995"),
        created_at=datetime(2026, 11, 3, 1, 30, tzinfo=UTC),
    )  # fmt: skip
    AdvisorReview.objects.create(  # last month's spend does not count
        user=other, day=date(2026, 10, 3), status=ReviewStatus.OK, cost_usd=Decimal("50"),
        created_at=datetime(2026, 10, 3, 1, 30, tzinfo=UTC),
    )  # fmt: skip
    assert services.advisor_review_all(now=NOW)["skipped"] == 1
    review = _review(trader)
    assert review.status == ReviewStatus.SKIPPED and "monthly cost cap" in review.error and "1 USD" in review.error
    assert review.cost_usd == 0 and review.estimated_cost_usd > Decimal("0.005")
    assert llm.requests == []


def test_off_sends_nothing(llm: StandInLLM, trader: Any) -> None:
    services.advisor_review_all(now=NOW)  # never configured: off by default
    _enable(llm.url)
    services.advisor_settings_update(actor=None, enabled=False)
    assert services.advisor_review_all(now=NOW) == {"users": 0, "running": 0, "ok": 0, "failed": 0, "skipped": 0}
    assert llm.requests == [] and not AdvisorReview.objects.exists()


def _candles() -> None:
    candle_services.candles_import(
        exchange_name="binance", symbol="BTC/USDT", timeframe="1h", lines=csv_lines(cyclic_rows(1500))
    )


def test_may_act_off_shows_the_retrain_without_running_it(llm: StandInLLM, trader: Any) -> None:
    _candles()
    _enable(llm.url, allowed_actions=["retrain"])  # allowed, but acting is off
    llm.answer_review(GOOD)
    services.advisor_review_all(now=NOW)
    (action,) = _review(trader).actions_taken
    assert action["done"] is False and action["reason"] == "acting is off: shown only"
    assert not BackgroundTask.objects.exists()


def test_may_act_on_submits_the_training_task(llm: StandInLLM, trader: Any) -> None:
    _candles()
    _enable(llm.url, may_act=True, allowed_actions=["retrain"])
    suggested = [
        *GOOD["actions"],
        {"kind": "retrain", "symbol": "BTC/USDT", "timeframe": "1h", "reason": "twice"},
        {"kind": "retrain", "symbol": "ETH/USDT", "timeframe": "1h", "reason": "not traded"},
        {"kind": "pause", "reason": "not an action"},
    ]
    llm.answer_review(GOOD | {"actions": suggested})
    services.advisor_review_all(now=NOW)
    taken = _review(trader).actions_taken
    assert [item["done"] for item in taken] == [True, False, False, False]
    assert "already suggested" in taken[1]["reason"] and "not a market" in taken[2]["reason"]
    assert "not an action the engine can take" in taken[3]["reason"]
    task = BackgroundTask.objects.get()
    assert task.kind == "train" and task.owner == trader and str(task.pk) == taken[0]["task_id"]
    assert (task.params["symbol"], task.params["timeframe"], task.params["horizon"]) == ("BTC/USDT", "1h", 5)


def test_may_act_on_but_not_allowed_submits_nothing(llm: StandInLLM, trader: Any) -> None:
    _enable(llm.url, may_act=True, allowed_actions=[])
    llm.answer_review(GOOD)
    services.advisor_review_all(now=NOW)
    (action,) = _review(trader).actions_taken
    assert action["done"] is False and "has not allowed" in action["reason"]
    assert not BackgroundTask.objects.exists()


def test_settings_are_validated_naming_the_field() -> None:
    with pytest.raises(ValidationError) as bad_url:
        services.advisor_settings_update(actor=None, enabled=True, base_url="ftp://example.com", model="m")
    assert "base_url" in bad_url.value.message_dict
    with pytest.raises(ValidationError) as no_model:
        services.advisor_settings_update(actor=None, enabled=True, base_url="https://api.example.com")
    assert "model" in no_model.value.message_dict
    with pytest.raises(ValidationError) as bad_action:
        services.advisor_settings_update(actor=None, allowed_actions=["flatten"])
    assert "allowed_actions" in bad_action.value.message_dict
    with pytest.raises(ValidationError) as bad_timeout:
        services.advisor_settings_update(actor=None, timeout_seconds="soon", max_output_tokens=0)
    assert set(bad_timeout.value.message_dict) == {"timeout_seconds", "max_output_tokens"}
    with pytest.raises(ValidationError) as secret_in_url:
        services.advisor_settings_update(actor=None, base_url="https://user:pw@api.example.com")
    assert "base_url" in secret_in_url.value.message_dict
    assert not selectors.advisor_settings_get().enabled


def test_the_admin_shows_the_key_masked_and_keeps_it_write_only(admin_client: Client) -> None:
    services.advisor_settings_update(actor=None, api_key=API_KEY, base_url="https://api.example.com", model="m")
    stored = AdvisorSettings.objects.get()
    assert stored.api_key_encrypted and API_KEY not in stored.api_key_encrypted
    url = f"/admin/analytics/advisorsettings/{stored.pk}/change/"
    html = admin_client.get(url).content.decode()
    assert "****9f3e" in html and API_KEY not in html and stored.api_key_encrypted not in html
    form = {
        "enabled": "on", "base_url": "https://api.example.com/v1", "model": "gpt-test", "timeout_seconds": "20",
        "max_output_tokens": "600", "monthly_cost_cap_usd": "5", "price_input_per_1k_usd": "0.001",
        "price_output_per_1k_usd": "0.002", "new_api_key": "",
    }  # fmt: skip
    assert admin_client.post(url, form).status_code == 302
    saved = AdvisorSettings.objects.get()
    assert saved.enabled and saved.model == "gpt-test" and saved.may_act is False
    assert crypto.decrypt(saved.api_key_encrypted, context=saved.encryption_context()) == API_KEY  # kept
    assert admin_client.post(url, form | {"new_api_key": "sk-new-key-7777"}).status_code == 302
    assert AdvisorSettings.objects.get().api_key_masked == "****7777"
    refused = admin_client.post(url, form | {"base_url": "file:///etc/passwd"})
    assert refused.status_code == 200 and "http://" in refused.content.decode()


def test_key_rotation_re_encrypts_the_advisor_key(settings: Any) -> None:
    key_a, key_b = (base64.b64encode(letter * 32).decode() for letter in (b"a", b"b"))
    settings.ENCRYPTION_KEYS = [key_a]
    services.advisor_settings_update(actor=None, api_key=API_KEY)
    settings.ENCRYPTION_KEYS = [key_b, key_a]
    result = secrets_rotate_all()
    assert result["advisor"] == 1 and result["from_old_keys"] >= 1
    settings.ENCRYPTION_KEYS = [key_b]
    row = AdvisorSettings.objects.get()
    assert crypto.decrypt(row.api_key_encrypted, context=row.encryption_context()) == API_KEY


def test_the_daily_task_runs_on_the_heavy_queue() -> None:
    assert advisor_daily.app.amqp.router.route({}, advisor_daily.name)["queue"].name == HEAVY_QUEUE
    assert advisor_daily.apply().get() == {"users": 0, "running": 0, "ok": 0, "failed": 0, "skipped": 0}  # off


def test_the_performance_page_reads_the_reviews_in_one_query(trader: Any) -> None:
    client = Client()
    client.force_login(trader)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/performance/").status_code == 200
        return len(captured)

    AdvisorReview.objects.create(user=trader, day=date(2026, 11, 20), status=ReviewStatus.FAILED, error="timed out")
    queries()  # warm: the first request's per-process reads (session, caches) are not the page's cost
    one = queries()
    for day in (21, 22, 23):
        AdvisorReview.objects.create(
            user=trader, day=date(2026, 11, day), status=ReviewStatus.OK, output={"summary": f"day {day}"}
        )
    assert queries() == one


def test_actions_decide_reads_the_market_and_caps_the_runs() -> None:
    markets = [("BTC/USDT", "1h"), ("ETH/USDT", "4h"), ("SOL/USDT", "1h"), ("XRP/USDT", "1h")]
    suggested = [{"kind": "Retrain", "symbol": symbol, "timeframe": tf} for symbol, tf in [
        ("btcusdt", "1h"), ("ETH/USDT", "4h"), ("SOL/USDT", "1h"), ("XRP/USDT", "1h"), ("BTC/USDT", "4h"),
    ]]  # fmt: skip
    decided = rules.actions_decide(suggested, may_act=True, allowed=["retrain"], markets=markets)
    assert [d.run for d in decided] == [True, True, True, False, False]
    assert decided[0].symbol == "BTC/USDT" and "at most 3" in decided[3].reason and "not a market" in decided[4].reason


def test_answer_parse_takes_a_fenced_object_and_refuses_bad_shapes() -> None:
    fenced = {"choices": [{"message": {"content": '```json\n{"summary": "fine", "observations": ["a"]}\n```'}}]}
    answer = rules.answer_parse(fenced)
    assert answer.review.summary == "fine" and answer.review.actions == () and not answer.has_usage
    with pytest.raises(rules.AnswerError, match="observations.0"):
        rules.answer_parse({"choices": [{"message": {"content": '{"summary": "x", "observations": [1]}'}}]})
    with pytest.raises(rules.AnswerError, match="usage.prompt_tokens"):
        rules.answer_parse({"choices": [{"message": {"content": '{"summary": "x"}'}}], "usage": {"prompt_tokens": -1}})
