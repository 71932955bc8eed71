"""`python -m bench [name ...]` (`make bench [BENCH=name]`): one JSON object per bench on stdout.

Runs inside `tradingsite.stack exec`, which provides DATABASE_URL and REDIS_URL. Every bench gets a
fresh copy of a migrated `tradingsite_bench` database and starts the processes it needs (simulator,
daphne, celery worker) on free loopback ports; they are stopped when the bench ends, fails, or on
Ctrl-C / SIGTERM. Diagnostics go to stderr. The exit status is 1 when a bench failed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench.harness import Harness, say

BENCHES = [
    "webhook_ack",
    "signal_to_order",
    "monitor_cycle",
    "risk_cycle",
    "adapter_overhead",
    "backtest",
    "strategy_tick",
    "page_server",
    "ui_latency",
    "optimize",
    "train",
]


def _adapter_present() -> bool:
    return importlib.util.find_spec("bench.adapter") is not None


def _run_one(name: str, harness: Any, explicit: bool) -> dict[str, Any] | None:
    if name == "adapter_overhead":
        if not _adapter_present():
            return {"bench": name, "skipped": "bench/adapter.py not present"} if explicit else None
        # optional: bench/adapter.py may be absent (see _adapter_present)
        from bench import adapter

        runner: Callable[..., dict[str, Any]] = adapter.run
        with harness.bench_scope():
            result = dict(runner())
        return {"bench": name, **{k: v for k, v in result.items() if k != "bench"}}
    module = importlib.import_module(f"bench.{name}")
    with harness.bench_scope():
        return module.run(harness)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    names = [part for arg in argv for part in arg.replace(",", " ").split()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown bench {', '.join(unknown)}; choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    explicit = bool(names)
    selected = names or BENCHES
    signal.signal(signal.SIGTERM, _on_sigterm)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    failed = False
    try:
        with Harness() as harness:
            for name in selected:
                started = time.monotonic()
                say(f"--- {name}")
                try:
                    line = _run_one(name, harness, explicit)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    traceback.print_exc(file=sys.stderr)
                    failed = True
                    line = {"bench": name, "error": f"{type(exc).__name__}: {exc}"[:500]}
                if line is not None:
                    print(json.dumps(line), flush=True)
                say(f"--- {name} done in {time.monotonic() - started:.0f} s")
    except KeyboardInterrupt:
        print("[bench] interrupted; everything started was stopped", file=sys.stderr)
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
