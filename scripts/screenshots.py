#!/usr/bin/env python
"""Screenshots of the web pages in headless Chromium at laptop and tablet widths (docs/web.md#looking).

    .venv/bin/python scripts/screenshots.py --base http://127.0.0.1:8000 --email a@b.c --password P \
        --out /tmp/shots / /positions/ /settings/

Logs in through the real login form, then saves `<out>/<name>-<width>.png` per path (1366×768 and 768×1024,
full page height). Dark theme too with `--dark`.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from web.browser import LAPTOP, TABLET, chromium_driver, log_in  # noqa: E402

SIZES = {"laptop": LAPTOP, "tablet": TABLET}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--out", type=Path, default=Path("/tmp/shots"))
    parser.add_argument("--dark", action="store_true")
    parser.add_argument("--wait", type=float, default=1.0, help="seconds to let the page's scripts run")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    browser = chromium_driver(LAPTOP)
    try:
        log_in(browser, args.base, args.email, args.password)
        if args.dark:
            browser.execute_script("localStorage.setItem('theme', 'dark')")
        for path in args.paths:
            name = re.sub(r"[^A-Za-z0-9]+", "_", path.strip("/")) or "dashboard"
            for label, (width, height) in SIZES.items():
                browser.set_window_size(width, height)
                browser.get(args.base + path)
                time.sleep(args.wait)
                full = browser.execute_script("return document.documentElement.scrollHeight")
                browser.set_window_size(width, min(max(height, full + 140), 4000))
                time.sleep(0.2)
                target = args.out / f"{name}-{label}{'-dark' if args.dark else ''}.png"
                browser.save_screenshot(str(target))
                print(target)
    finally:
        browser.quit()


if __name__ == "__main__":
    main()
