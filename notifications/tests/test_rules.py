"""The pure rules of notifications: no database, no network."""

from __future__ import annotations

import pytest

from notifications import rules

HOSTS = {"discord": ["discord.com", "discordapp.com"], "slack": ["hooks.slack.com"]}


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        ("order_filled", {"order_kind": "entry", "pyramid": 0}, "entry_filled"),
        ("order_filled", {"order_kind": "entry", "pyramid": 2}, "pyramid"),
        ("order_filled", {"order_kind": "dca", "pyramid": 2}, "entry_filled"),
        ("order_filled", {"order_kind": "tp_leg"}, "take_profit"),
        ("order_filled", {"order_kind": "stop_loss"}, None),  # told by the group's close, with its PnL
        ("group_closed", {"close_reason": "stop_loss"}, "stop_exit"),
        ("group_closed", {"close_reason": "trailing_stop"}, "stop_exit"),
        ("group_closed", {"close_reason": "tp_aggregate"}, "take_profit"),
        ("group_closed", {"close_reason": "exit_signal"}, "exit_signal"),
        ("group_closed", {"close_reason": "risk"}, None),  # told by the offset's own message
        ("risk_offset", {}, "risk_offset"),
        ("order_placed", {"order_kind": "entry"}, "entry_placed"),
        ("guard_refused", {"guard": "pause"}, "guard_triggered"),
        ("sequence_anomaly", {}, "sequence_anomaly"),
        ("strategy_disabled", {"reason": "x"}, "strategy_disabled"),
        ("order_rejected", {}, "order_rejected"),
        ("group_failed", {}, "group_failed"),
        ("something_else", {}, None),
    ],
)
def test_event_type_of_engine_events(kind, data, expected) -> None:
    assert rules.event_type_for(kind, data) == expected


def test_fill_message_names_pair_side_price_quantity_and_links_the_group() -> None:
    text = rules.message_text(
        "entry_filled",
        {
            "symbol": "BTC/USDT",
            "side": "buy",
            "order_kind": "dca",
            "level": 2,
            "price": "63050.000000000000000000",
            "quantity": "0.00150000",
            "avg_entry_price": "64010.5",
            "realized_pnl": "0",
        },
        link="https://engine.test/positions/abc/",
    )
    assert text.splitlines() == [
        "Filled: BTC/USDT BUY 0.0015 @ 63050 (DCA leg 2)",
        "Average entry 64010.5",
        "https://engine.test/positions/abc/",
    ]


def test_close_message_carries_the_pnl() -> None:
    text = rules.message_text(
        "stop_exit",
        {"symbol": "ETH/USDT", "timeframe": "1h", "close_reason": "trailing_stop", "realized_pnl": "-12.50"},
    )
    assert text == "Stopped out: ETH/USDT 1h (trailing stop)\nPnL -12.5 USDT"


def test_channel_settings_errors_name_each_field() -> None:
    assert rules.channel_errors("telegram", {"bot_token": "nope", "chat_id": "abc"}, allowed_hosts=HOSTS) == {
        "bot_token": "not a Telegram bot token (digits, a colon, then the key BotFather gave)",
        "chat_id": "not a Telegram chat id (a number, or @channel)",
    }
    assert (
        rules.channel_errors(
            "telegram",
            {"bot_token": "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1", "chat_id": "-1001234"},
            allowed_hosts=HOSTS,
        )
        == {}
    )
    assert rules.channel_errors("email", {"address": "not-an-address"}, allowed_hosts=HOSTS) == {
        "address": "not an email address"
    }
    assert "webhook_url" in rules.channel_errors(
        "slack", {"webhook_url": "https://evil.example/x"}, allowed_hosts=HOSTS
    )
    assert "webhook_url" in rules.channel_errors(
        "discord", {"webhook_url": "http://discord.com/api/webhooks/1/x"}, allowed_hosts=HOSTS
    )
    assert (
        rules.channel_errors("discord", {"webhook_url": "https://discord.com/api/webhooks/1/x"}, allowed_hosts=HOSTS)
        == {}
    )
    assert rules.channel_errors("discord", {}, allowed_hosts=HOSTS) == {"webhook_url": "required"}
    assert rules.channel_errors("discord", {}, allowed_hosts=HOSTS, secret_required=False) == {}


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (rules.Answer(status_code=200), rules.SENT),
        (rules.Answer(status_code=204), rules.SENT),
        (rules.Answer(status_code=429, retry_after_s=3), rules.RETRY),
        (rules.Answer(status_code=502), rules.RETRY),
        (rules.Answer(status_code=None, detail="timed out"), rules.RETRY),
        (rules.Answer(status_code=400), rules.FAILED),
        (rules.Answer(status_code=404), rules.FAILED),
        (rules.Answer(status_code=None, permanent=True), rules.FAILED),
    ],
)
def test_delivery_outcome(answer, outcome) -> None:
    assert rules.delivery_outcome(answer) == outcome


def test_backoff_doubles_honours_retry_after_and_is_capped() -> None:
    assert [rules.backoff_seconds(n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert rules.backoff_seconds(9) == 300
    assert rules.backoff_seconds(1, retry_after_s=12.2) == 13


def test_command_parse() -> None:
    assert rules.command_parse("/close 1a2b yes") == rules.Command("close", ("1a2b", "yes"))
    assert rules.command_parse("/Status@MyEngineBot") == rules.Command("status")
    assert rules.command_parse("/rm -rf") == rules.Command("", ("-rf",))
    assert rules.command_parse("hello") == rules.Command("")


def test_guard_anomaly_placed_and_offset_messages() -> None:
    guard = rules.message_text(
        "guard_triggered",
        {
            "symbol": "ETH/USDT",
            "timeframe": "1h",
            "action": "buy",
            "guard": "exposure",
            "outcome": "queued",
            "reason": "exposure: exposure 200.00 + 200.00 would pass max_total_exposure_usd 300",
        },
    )
    assert guard.splitlines() == [
        "Guard exposure: ETH/USDT 1h buy queued",
        "exposure: exposure 200.00 + 200.00 would pass max_total_exposure_usd 300",
    ]
    anomaly = rules.message_text(
        "sequence_anomaly",
        {"symbol": "XRP/USDT", "timeframe": "1h", "action": "sell", "reason": "an exit arrived with nothing open"},
        link="https://engine.test/positions/abc/",
    )
    assert anomaly.splitlines() == [
        "Sequence anomaly: XRP/USDT 1h sell",
        "an exit arrived with nothing open",
        "https://engine.test/positions/abc/",
    ]
    placed = rules.message_text(
        "entry_placed",
        {
            "symbol": "BTC/USDT",
            "side": "buy",
            "order_kind": "entry",
            "order_type": "limit",
            "pyramid": 0,
            "price": "64000.00",
            "quantity": "0.0031",
            "avg_entry_price": None,
            "realized_pnl": "0",
        },
    )
    assert placed == "Entry placed: BTC/USDT BUY 0.0031 @ 64000 (limit, entry)"
    offset = rules.message_text(
        "risk_offset",
        {
            "symbol": "SOL/USDT",
            "loser_quantity": "2.5",
            "loser_realized": "-30.10",
            "winners": [{"symbol": "BTC/USDT", "realized": "18.2"}, {"symbol": "ETH/USDT", "realized": "12.4"}],
            "net": "0.50",
        },
    )
    assert offset.splitlines() == [
        "Risk offset: SOL/USDT closed 2.5, realized -30.1",
        "Winner BTC/USDT realized 18.2",
        "Winner ETH/USDT realized 12.4",
        "Net 0.5 USDT",
    ]
