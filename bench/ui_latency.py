"""`ui_latency`: a state change committed → the change visible in a real headless Chromium page.

The owner of 12 groups (web/demo.py) has the dashboard open in headless Chromium (web/browser.py), logged
in through the real form, against daphne as `make run` starts it. 100 times this process changes a group
the way the engine does (a row saved in a transaction; `positions.events.publish_group` sends
`group.updated` when it commits) with a realized PnL no row shows yet, and the page watches its own DOM
(a MutationObserver) for that number. Latency = the moment the text is in the page (the browser's
`Date.now()`) − the moment the transaction committed (`time.time()` here; one machine, one clock). What it
covers: the event through Redis to daphne's websocket, static/js/live.js's debounce (120 ms), the
region's fetch (`?partial=groups`) and the swap.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from bench.harness import Harness, load_average, say
from bench.stats import percentile

EVENTS = 100
TIMEOUT_S = 10.0
WATCH = """
window.__seen = {};
new MutationObserver(function () {
  var text = document.getElementById("main").textContent;
  (window.__want || []).forEach(function (marker) {
    if (!(marker in window.__seen) && text.indexOf(marker) !== -1) window.__seen[marker] = Date.now();
  });
}).observe(document.getElementById("main"), {childList: true, subtree: true, characterData: true});
"""


def run(harness: Harness) -> dict[str, Any]:
    # Imported here: `python -m bench` sets Django up (Harness) after importing the benches
    from django.db import transaction

    # (our apps' modules too: they need Django's apps loaded)
    from accounts.models import User
    from exchanges.models import ExchangeConfig
    from positions.events import publish_group
    from positions.models import PositionGroup
    from web.browser import chromium_driver, chromium_missing, log_in
    from web.demo import populate

    missing = chromium_missing()
    if missing:
        return {"bench": "ui_latency", "skipped": missing}
    user = User.objects.create_user(email="ui@bench.local", username="ui", password="Bench-12345", role="trader")
    config = ExchangeConfig(user=user, exchange_name="simulator", mode="testnet", is_enabled=True)
    config.set_credentials(api_key="bench-ui-key-0001", api_secret="bench-ui-secret-0001xxxxxxxxxx", password=None)
    config.save()
    populate(user=user, exchange_config=config, groups=12, legs=5, closed_share=0)
    group = PositionGroup.objects.filter(user=user).order_by("-created_at").first()
    assert group is not None
    base = harness.start_web()
    driver = chromium_driver()
    latencies: list[float] = []
    try:
        log_in(driver, base, "ui@bench.local", "Bench-12345")
        driver.get(base + "/")
        deadline = time.monotonic() + 15
        while driver.execute_script("return document.getElementById('conn').dataset.state") != "live":
            if time.monotonic() > deadline:
                raise RuntimeError("the dashboard's websocket did not connect")
            time.sleep(0.05)
        driver.execute_script(WATCH)
        for index in range(EVENTS):
            value = Decimal(77000 + index) + Decimal("0.25")
            marker = f"+{value:,.2f}"  # as the `signed` filter shows it
            driver.execute_script("window.__want = [arguments[0]];", marker)
            with transaction.atomic():
                PositionGroup.objects.filter(pk=group.pk).update(realized_pnl=value)
                group.realized_pnl = value
                publish_group(group)
            committed = time.time()
            waited = time.monotonic() + TIMEOUT_S
            seen = None
            while seen is None and time.monotonic() < waited:
                seen = driver.execute_script("return window.__seen[arguments[0]] || null;", marker)
                if seen is None:
                    time.sleep(0.01)
            if seen is None:
                raise RuntimeError(f"change {index} not visible within {TIMEOUT_S} s")
            latencies.append(seen - committed * 1000)
            time.sleep(0.2)  # one change at a time: each is its own event, not a burst
    finally:
        driver.quit()
    load = load_average()
    say(f"ui latency over {len(latencies)} changes: p50 {percentile(latencies, 50):.0f} ms")
    return {
        "bench": "ui_latency",
        "events": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "max_ms": round(max(latencies), 1),
        "loadavg_1m": load,
    }
