"""Symbols as traders type them (docs/web.md#positions): one rule, `exchanges.precision.unified_symbol`, for
the webhook without market rules, the API's `symbol` filter and the positions page."""

from __future__ import annotations

import pytest

from exchanges.precision import unified_symbol


@pytest.mark.parametrize(
    "raw",
    ["BTCUSDT", "btcusdt", "BTC-USDT", "btc_usdt", "BTC/USDT", "btc/usdt", "BINANCE:BTCUSDT", "BTCUSDT.P", " BTCUSDT "],
)
def test_every_spelling_gives_the_unified_symbol(raw):
    assert unified_symbol(raw) == "BTC/USDT"


def test_longer_quotes_and_unknown_quotes():
    assert unified_symbol("ETHFDUSD") == "ETH/FDUSD"
    assert unified_symbol("ETHBTC") == "ETH/BTC"
    assert unified_symbol("1000PEPEUSDT") == "1000PEPE/USDT"
    assert unified_symbol("USDT") is None  # a quote alone has no base
    assert unified_symbol("FOOBAR") is None


@pytest.mark.django_db
def test_api_positions_filter_accepts_tradingview_symbols(api_client, sim_config):
    from positions.models import PositionGroup

    user = sim_config.user
    btc = PositionGroup.objects.create(user=user, exchange_config=sim_config, symbol="BTC/USDT", timeframe="1h")
    PositionGroup.objects.create(user=user, exchange_config=sim_config, symbol="ETH/USDT", timeframe="1h")
    api_client.force_authenticate(user)
    for raw in ("BTCUSDT", "btcusdt", "BTC-USDT", "BTC/USDT"):
        listed = api_client.get("/api/positions", {"symbol": raw})
        assert listed.status_code == 200
        assert [g["id"] for g in listed.json()] == [str(btc.pk)], raw
    assert api_client.get("/api/positions", {"symbol": "DOGEUSDT"}).json() == []
