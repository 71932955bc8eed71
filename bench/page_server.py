"""`page_server`: server time and query count of every web page with 500 groups and 5,000 orders.

Each page of the navigation (web/nav.py: the pages that exist) and one group's page are requested through
Django's test client in this process, as the logged-in owner of 500 groups (10 legs each, so 5,000 DCA
orders, plus take-profit orders for the filled legs; web/demo.py). Time is the request's server time:
view, queries and template, no network. The query count is read for the same page of a user with 5
groups too: a page whose count grows with the rows it shows has an N+1 (`queries_small` beside
`queries`).
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import Harness, load_average, say
from bench.stats import percentile

GROUPS = 500
LEGS = 10
WARMUP = 3
SAMPLES = 30


def _owner(email: str, groups: int) -> Any:
    # Django is set up by Harness after this module is imported
    from accounts.models import User
    from exchanges.models import ExchangeConfig
    from web.demo import populate

    user = User.objects.create_user(email=email, username=email.split("@")[0], password="Bench-12345", role="trader")
    config = ExchangeConfig(user=user, exchange_name="simulator", mode="testnet", is_enabled=True)
    config.set_credentials(api_key="bench-page-key-0001", api_secret="bench-page-secret-0001xxxxxxxx", password=None)
    config.save()
    made = populate(user=user, exchange_config=config, groups=groups, legs=LEGS)
    return user, made


def _pages(user: Any) -> list[str]:
    # Imported here: `python -m bench` sets Django up (Harness) after importing the benches
    from django.test import RequestFactory

    # (our apps' modules too: they need Django's apps loaded)
    from positions.models import PositionGroup
    from web.nav import navigation

    request = RequestFactory().get("/")
    request.user = user
    paths = [item["url"] for item in navigation(request)["web_nav"]]
    group = PositionGroup.objects.filter(user=user, closed_at__isnull=True).order_by("created_at").first()
    if group is not None:
        paths.append(f"/positions/{group.pk}/")
    return paths


def _measure(client: Any, path: str, samples: int) -> tuple[list[float], int, int]:
    # Imported here: `python -m bench` sets Django up (Harness) after importing the benches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(WARMUP):
        client.get(path)
    times = []
    status = 0
    for _ in range(samples):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        status = response.status_code
    with CaptureQueriesContext(connection) as queries:
        client.get(path)
    return times, len(queries.captured_queries), status


def run(harness: Harness) -> dict[str, Any]:
    # Imported here: `python -m bench` sets Django up (Harness) after importing the benches
    from django.db import connection
    from django.test import Client

    started = time.monotonic()
    big, made = _owner("pages-big@bench.local", GROUPS)
    small, _ = _owner("pages-small@bench.local", 5)
    orders = made["legs"] + made["exits"]
    # Planner statistics for the rows just written, as autovacuum's analyze keeps them in production (this
    # server may run without autovacuum): with the empty template's, PostgreSQL picks plans for empty tables.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    say(
        f"populated {made['groups']} groups, {made['legs']} DCA orders, {made['exits']} exit orders "
        f"in {time.monotonic() - started:.1f} s"
    )
    # A host ALLOWED_HOSTS lets in (Django's test environment, which adds `testserver`, is not set up here).
    big_client, small_client = Client(SERVER_NAME="localhost"), Client(SERVER_NAME="localhost")
    big_client.force_login(big)
    small_client.force_login(small)
    pages: dict[str, dict[str, Any]] = {}
    load = load_average()
    small_paths = dict(zip(_pages(big), _pages(small), strict=False))
    for path in _pages(big):
        times, queries, status = _measure(big_client, path, SAMPLES)
        _, queries_small, _ = _measure(small_client, small_paths.get(path, path), 1)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
        pages[path] = {
            "p95_ms": round(percentile(times, 95), 1),
            "p50_ms": round(percentile(times, 50), 1),
            "queries": queries,
            "queries_small": queries_small,
            "status": status,
        }
        say(f"{path}: p95 {pages[path]['p95_ms']} ms, {queries} queries ({queries_small} with 5 groups)")
    return {
        "bench": "page_server",
        "groups": made["groups"],
        "orders": orders,
        "pages": pages,
        "loadavg_1m": load,
    }
