"""A real headless Chromium driven by Selenium (Debian's ``chromium`` and ``chromium-driver``).

Without them the browser tests are skipped, unless ``IC_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which
installs them), which turns that into a failure."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_paths() -> tuple[str, str] | None:
    browser = next((p for p in (shutil.which(n) for n in CHROMIUM_CANDIDATES) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def start_browser(width: int = 1280, height: int = 900) -> Any:
    """A started headless Chromium (``quit()`` it), or a skip/failure when there is none."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:  # pragma: no cover - selenium is in the test extras
        _missing(f"selenium is not installed: {exc}")
    paths = chromium_paths()
    if paths is None:
        _missing("no chromium/chromedriver on PATH (apt-get install chromium chromium-driver)")
    browser, driver = paths  # type: ignore[misc]
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--disable-extensions", "--no-first-run",
                "--proxy-server=direct://", "--proxy-bypass-list=*"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def _missing(reason: str) -> None:
    if os.environ.get("IC_REQUIRE_BROWSER") == "1":
        pytest.fail(f"a headless browser is required (IC_REQUIRE_BROWSER=1): {reason}")
    pytest.skip(reason)
