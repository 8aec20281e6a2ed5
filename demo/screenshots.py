"""Console screenshots for docs/console.md, taken by headless Chromium while the demo runs
(``python -m demo --screenshots docs``; needs selenium, and Debian's chromium and chromium-driver)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

OPERATOR = "screenshots"


def _browser(width: int, height: int) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        raise RuntimeError("screenshots need chromium and chromedriver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def take_screenshots(env: dict[str, str], workdir: Path, public_url: str, pages: list[tuple[str, str, int]],
                     outdir: Path) -> list[Path]:
    """Sign in with a fresh one-time login, then save each (console path, file name, window height)."""
    from selenium.webdriver.common.by import By

    made = subprocess.run([sys.executable, "-m", "integration_core", "console", "operator", "set", OPERATOR,
                           "--token", "--one-time"], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    token = made.stdout.split("token (shown only now): ", 1)[1].strip()
    outdir.mkdir(parents=True, exist_ok=True)
    base = public_url + "/console"
    saved = []
    b = _browser(1280, 900)
    try:
        b.get(base + "/login")
        b.find_element(By.ID, "name").send_keys(OPERATOR)
        b.find_element(By.ID, "secret").send_keys(token)
        b.find_element(By.ID, "sign-in").click()
        for path, name, height in pages:
            b.set_window_size(1280, height)
            b.get(base + path)
            target = outdir / name
            b.save_screenshot(str(target))
            saved.append(target)
            print(f"   screenshot {target}")
    finally:
        b.quit()
    return saved
