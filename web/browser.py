"""Headless Chromium for the browser tests, the screenshots and the `ui_latency` bench (docs/web.md#looking).

Debian's `chromium` and `chromium-driver` (CI installs them, `.ci/run`); `CHROMIUM` / `CHROMEDRIVER` point
elsewhere. Tests call `chromium_missing()` and skip with its reason.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--hide-scrollbars")
LAPTOP = (1366, 768)
TABLET = (768, 1024)


def chromium_missing() -> str | None:
    """Why the browser cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(path)):
            return f"{path} is not installed (apt install chromium chromium-driver)"
    return None


def chromium_driver(size: tuple[int, int] = LAPTOP) -> Any:
    """A headless Chromium WebDriver at `size`; quit it when done."""
    from selenium import webdriver  # only the browser tests, screenshots and benches need Selenium loaded

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ARGS:
        options.add_argument(arg)
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_window_size(*size)
    return driver


def log_in(driver: Any, base_url: str, email: str, password: str) -> None:
    """Log in through the real allauth form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base_url + "/accounts/login/")
    driver.find_element(By.NAME, "login").send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit], main form button").click()
    WebDriverWait(driver, 10).until(expected_conditions.url_changes(base_url + "/accounts/login/"))
