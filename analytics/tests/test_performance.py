"""The live performance numbers (analytics.performance, `GET /api/metrics/performance`) checked against a
ledger built by hand, with the arithmetic written out.

"Now" is Wednesday 2026-11-25 12:00 UTC: the week began Monday 2026-11-23, the month on 2026-11-01.
Fees are in USDT, so each buy's cost is price × quantity + fee and each sell's proceeds price × quantity − fee.

G1 BTC/USDT, closed 11-10:  buy 0.01 @ 60000 (fee 0.60) 11-08, buy 0.01 @ 58000 (fee 0.58) 11-09,
                            sell 0.02 @ 61000 (fee 1.22) 11-10
    cost 600.60 + 580.58 = 1181.18; proceeds 1220 − 1.22 = 1218.78; realized +37.60; return 37.60/1181.18
G2 ETH/USDT, closed 11-24:  buy 1 @ 3000 (fee 3) 11-20, sell 1 @ 2900 (fee 2.90) 11-24
    cost 3003; proceeds 2897.10; realized −105.90; return −105.90/3003
G3 BTC/USDT, open:          buy 0.01 @ 62000 (fee 0.62) 11-25 01:00, sell 0.005 @ 63000 (fee 0.315) 11-25 02:00,
                            a resting leg: buy 0.01 @ 60000
    after the buy: held 0.01, cost 620.62 (average 62062); the sell: 315 − 0.315 − 62062 × 0.005 = +4.375,
    cost left 310.31 for 0.005; last price 64000 → unrealized 320 − 310.31 = 9.69; locked 60000 × 0.01 = 600
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.tests.factories import UserClient, UserFactory
from analytics.performance import performance_compute
from exchanges.candles.rules import CandleRow
from exchanges.candles.services import candles_store
from exchanges.client_ids import client_order_id_for
from exchanges.models import ExchangeConfig
from positions.models import DCAOrder, ExitOrder, Fill, PositionGroup, Pyramid
from positions.selectors import last_price_remember

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=UTC)


def _group(config: ExchangeConfig, symbol: str, status: str, closed_at: datetime | None = None) -> PositionGroup:
    return PositionGroup.objects.create(
        user=config.user, exchange_config=config, symbol=symbol, timeframe="1h", status=status, closed_at=closed_at
    )


def _leg(group: PositionGroup, level: int, price: str, quantity: str, *, status: str = "filled") -> DCAOrder:
    pyramid, _ = Pyramid.objects.get_or_create(
        group=group, index=0, defaults={"entry_price": D(price), "capital_usd": D("200")}
    )
    order_id = uuid.uuid4()
    return DCAOrder.objects.create(
        id=order_id,
        group=group,
        exchange_config=group.exchange_config,
        pyramid=pyramid,
        symbol=group.symbol,
        side="buy",
        order_type="limit",
        price=D(price),
        quantity=D(quantity),
        client_order_id=client_order_id_for(order_id),
        pyramid_level=0,
        dca_level=level,
        expected_price=D(price),
        status=status,
    )


def _sell(group: PositionGroup, price: str, quantity: str) -> ExitOrder:
    order_id = uuid.uuid4()
    return ExitOrder.objects.create(
        id=order_id,
        group=group,
        exchange_config=group.exchange_config,
        symbol=group.symbol,
        side="sell",
        order_type="limit",
        price=D(price),
        quantity=D(quantity),
        client_order_id=client_order_id_for(order_id),
        purpose="tp_leg",
        status="filled",
    )


def _fill(order: DCAOrder | ExitOrder, price: str, quantity: str, fee: str, when: datetime) -> None:
    owner: dict[str, DCAOrder | ExitOrder] = (
        {"dca_order": order} if isinstance(order, DCAOrder) else {"exit_order": order}
    )
    Fill.objects.create(
        group=order.group,
        trade_id=str(uuid.uuid4()),
        side=order.side,
        price=D(price),
        quantity=D(quantity),
        fee=D(fee),
        fee_asset="USDT",
        executed_at=when,
        **owner,
    )


def _daily(symbol: str, closes: dict[int, str]) -> None:
    rows = [
        CandleRow(int(at(day, 0).timestamp() * 1000), D(close), D(close), D(close), D(close), D("1"))
        for day, close in closes.items()
    ]
    candles_store(exchange_name="simulator", symbol=symbol, timeframe="1d", rows=rows)


@pytest.fixture
def ledger():
    user = UserFactory.create(role="trader")
    config = ExchangeConfig(user=user, exchange_name="simulator", mode="testnet", is_enabled=True)
    config.set_credentials(api_key="demo-key-0001", api_secret="demo-secret-0001-xxxxxxxxxxxxxxxx", password=None)
    config.save()
    g1 = _group(config, "BTC/USDT", "closed", closed_at=at(10))
    _fill(_leg(g1, 0, "60000", "0.01"), "60000", "0.01", "0.60", at(8))
    _fill(_leg(g1, 1, "58000", "0.01"), "58000", "0.01", "0.58", at(9))
    _fill(_sell(g1, "61000", "0.02"), "61000", "0.02", "1.22", at(10))
    g2 = _group(config, "ETH/USDT", "closed", closed_at=at(24, 9))
    _fill(_leg(g2, 0, "3000", "1"), "3000", "1", "3", at(20))
    _fill(_sell(g2, "2900", "1"), "2900", "1", "2.90", at(24, 9))
    g3 = _group(config, "BTC/USDT", "active")
    _fill(_leg(g3, 0, "62000", "0.01"), "62000", "0.01", "0.62", at(25, 1))
    _fill(_sell(g3, "63000", "0.005"), "63000", "0.005", "0.315", at(25, 2))
    _leg(g3, 1, "60000", "0.01", status="open")
    last_price_remember(config_id=config.pk, symbol="BTC/USDT", price=D("64000"))
    # Daily closes (candles open at 00:00 UTC); 11-22 has none for ETH: that day counts ETH at cost.
    _daily("BTC/USDT", {8: "59000", 9: "59500"})
    _daily("ETH/USDT", {20: "3100", 21: "2950", 23: "2800"})
    return user


def test_realized_unrealized_deals_exposure_and_locked_capital(ledger) -> None:
    numbers = performance_compute(user=ledger, now=NOW, capital=D("10000"))
    # today: G3's 4.375; this week: G2's −105.90 + 4.375; this month and in all: + G1's 37.60
    assert numbers["realized_pnl"] == {"day": "4.375", "week": "-101.525", "month": "-63.925", "all": "-63.925"}
    assert numbers["unrealized_pnl"] == "9.69" and numbers["unpriced_symbols"] == []
    assert numbers["total_pnl"] == "-54.235"  # −63.925 + 9.69
    deals = numbers["deals"]
    assert (deals["deals"], deals["wins"], deals["losses"], deals["win_rate"]) == (2, 1, 1, 50.0)
    assert deals["profit_factor"] == pytest.approx(37.60 / 105.90, abs=1e-4)
    assert deals["expectancy"] == pytest.approx((37.60 - 105.90) / 2, abs=1e-4)
    assert numbers["best_deals"][0]["realized_pnl"] == "37.6" and numbers["best_deals"][0]["invested"] == "1181.18"
    assert numbers["best_deals"][0]["return_pct"] == pytest.approx(37.60 / 1181.18 * 100, abs=1e-4)
    assert numbers["worst_deals"][0]["symbol"] == "ETH/USDT" and numbers["worst_deals"][0]["realized_pnl"] == "-105.9"
    # returns 3.18 % and −3.53 %: bins of 1 % from −4 to 4
    histogram = {(b["from"], b["to"]): b["count"] for b in numbers["return_histogram"]}
    assert histogram[(-4, -3)] == 1 and histogram[(3, 4)] == 1 and sum(histogram.values()) == 2
    assert numbers["exposure"] == [
        {
            "symbol": "BTC/USDT",
            "held": "0.005",
            "cost": "310.31",
            "value": "320",
            "unrealized": "9.69",
            "locked_in_resting_legs": "600",
        }
    ]
    assert numbers["capital_locked"] == "600" and numbers["pool"] == {"used": 1, "max": 10}


def test_the_daily_curve_is_marked_at_each_days_close(ledger) -> None:
    numbers = performance_compute(user=ledger, now=NOW, capital=D("10000"))
    curve = {row["day"][-5:]: (row["realized"], row["total"]) for row in numbers["equity"]}
    assert len(curve) == 18  # 11-08 .. 11-25
    assert curve["11-08"] == ("0", "-10.6")  # 0.01 × 59000 − 600.60
    assert curve["11-09"] == ("0", "8.82")  # 0.02 × 59500 − 1181.18
    assert curve["11-10"] == ("37.6", "37.6")
    assert curve["11-19"] == ("37.6", "37.6")
    assert curve["11-20"] == ("37.6", "134.6")  # + 1 × 3100 − 3003
    assert curve["11-21"] == ("37.6", "-15.4")  # + 2950 − 3003
    assert curve["11-22"] == ("37.6", "37.6")  # no ETH candle: at cost
    assert curve["11-23"] == ("37.6", "-165.4")  # + 2800 − 3003
    assert curve["11-24"] == ("-68.3", "-68.3")
    assert curve["11-25"] == ("-63.925", "-54.235")  # marked at the last price
    weeks = {row["period"]: row["pnl"] for row in numbers["pnl_by_week"]}
    assert weeks == {"2026-11-02": "0", "2026-11-09": "37.6", "2026-11-16": "0", "2026-11-23": "-101.525"}
    assert numbers["pnl_by_month"] == [{"period": "2026-11", "pnl": "-63.925"}]

    # Drawdown: the peak 134.60 (11-20) to −165.40 (11-23) is 300; on 10000 of capital 300 / 10134.60.
    assert numbers["drawdown"]["max"] == "300"
    assert numbers["drawdown"]["max_pct"] == pytest.approx(300 / 10134.60 * 100, abs=1e-4)
    # Sharpe and Sortino of the daily returns of 10000 + total, computed here independently.
    equity = [10000 + float(total) for _, total in curve.values()]
    returns = [b / a - 1 for a, b in zip(equity, equity[1:], strict=False)]
    mean = statistics.fmean(returns)
    assert numbers["sharpe"] == pytest.approx(mean / statistics.stdev(returns) * math.sqrt(365), abs=1e-3)
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in returns) / len(returns))
    assert numbers["sortino"] == pytest.approx(mean / downside * math.sqrt(365), abs=1e-3)


def test_the_api_answers_json_csv_and_png_for_the_owner_only(ledger) -> None:
    client = UserClient()
    client.force_authenticate(ledger)
    body = client.get("/api/metrics/performance").json()
    assert body["realized_pnl"]["all"] == "-63.925" and body["capital_base"] == "2000"  # 200 × 10 groups
    answer = client.get("/api/metrics/performance?format=csv")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.content.decode())))
    assert ["realized_pnl_all", "-63.925"] in rows and rows[-1][0] == body["equity"][-1]["day"]
    answer = client.get("/api/metrics/performance?format=png")
    assert answer.status_code == 200 and answer["Content-Type"] == "image/png"
    assert answer.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.get("/api/metrics/performance?format=xml").status_code == 400
    other = UserClient()
    other.force_authenticate(UserFactory.create(role="trader"))
    empty = other.get("/api/metrics/performance").json()
    assert empty["realized_pnl"]["all"] == "0" and empty["deals"]["deals"] == 0 and empty["exposure"] == []


def test_a_new_fill_and_a_group_that_ends_are_counted_at_once(ledger) -> None:
    # The fill walks are kept between reads (analytics.performance._walks): each change must still show.
    assert performance_compute(user=ledger, now=NOW, capital=D("10000"))["realized_pnl"]["all"] == "-63.925"
    g3 = PositionGroup.objects.get(user=ledger, status="active")
    # G3 sells its last 0.005 @ 64000 (fee 0.32): 320 − 0.32 − 310.31 = +9.37, realized in all −54.555.
    _fill(_sell(g3, "64000", "0.005"), "64000", "0.005", "0.32", at(25, 3))
    numbers = performance_compute(user=ledger, now=NOW, capital=D("10000"))
    assert numbers["realized_pnl"]["all"] == "-54.555"
    assert numbers["deals"]["deals"] == 2  # G3 is still open
    PositionGroup.objects.filter(pk=g3.pk).update(status="closed", closed_at=at(25, 3))
    assert performance_compute(user=ledger, now=NOW, capital=D("10000"))["deals"]["deals"] == 3
