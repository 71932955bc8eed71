"""Every page of the navigation, and a group's page, answer with a query count that does not grow with the
rows shown (docs/web.md#queries): the same page for an owner of 10 groups and of 30 groups. Both have open
groups in the same markets (the demo's six pairs), so only the number of rows differs: a page's cost per
market (one batched ticker request per exchange, a market without rules looked up each time) is not a row's."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from exchanges.tests.factories import ExchangeConfigFactory, MarketRuleFactory
from positions.models import PositionGroup
from web.demo import populate
from web.nav import navigation

pytestmark = pytest.mark.django_db


def _owner(groups: int) -> tuple[Any, Client]:
    user = UserFactory.create(role="trader")
    populate(user=user, exchange_config=ExchangeConfigFactory.create(user=user), groups=groups, legs=4)
    client = Client()
    client.force_login(user)
    return user, client


def _pages(user: Any) -> list[str]:
    request = RequestFactory().get("/")
    request.user = user
    paths = [item["url"] for item in navigation(request)["web_nav"]]
    group = PositionGroup.objects.filter(user=user, closed_at__isnull=True).order_by("created_at").first()
    assert group is not None
    return [*paths, f"/positions/{group.pk}/"]


def _queries(client: Client, path: str) -> int:
    client.get(path)  # warm: first-request caches (market rules, sessions) are not the page's cost
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return len(captured.captured_queries)


def test_query_counts_do_not_grow_with_the_rows_shown() -> None:
    # Market rules of every pair the demo writes, as a trader's exchange has them: a market without rules
    # takes the adapter's load-on-miss path (throttled, so its queries depend on the clock, not the rows).
    for base in ("BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE"):
        MarketRuleFactory.create(base=base)
    few_user, few = _owner(10)
    many_user, many = _owner(30)
    grown = {}
    for few_path, many_path in zip(_pages(few_user), _pages(many_user), strict=True):
        small, large = _queries(few, few_path), _queries(many, many_path)
        if large != small:
            grown[few_path] = (small, large)
    assert grown == {}, f"pages whose query count grows with their rows (10 groups → 30): {grown}"


def test_every_page_sends_a_logged_out_visitor_to_the_login_page() -> None:
    user, _ = _owner(3)
    anonymous = Client()
    for path in _pages(user):
        response = anonymous.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), path
