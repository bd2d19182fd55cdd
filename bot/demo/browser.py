"""Debian's Chromium, headless, driven by Selenium through Debian's chromedriver (the tests and
scripts/screenshot.py): never a downloaded browser or driver (Selenium Manager is not consulted when the
driver's path is given), and no background traffic to the browser vendor (this may run offline)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1"]


def missing() -> str:
    """Why the browser cannot run here ("" when it can)."""
    gone = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if gone:
        return f"{' and '.join(gone)} missing: apt-get install chromium chromium-driver (scripts/install-deps.sh)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return ""


@contextmanager
def chromium(profile: Path | None = None, width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile (in `profile`, else a temp dir), console logs kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    own = profile is None
    user_data = Path(tempfile.mkdtemp(prefix="chromium-")) if profile is None else profile
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={user_data}", f"--window-size={width},{height}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        if own:
            shutil.rmtree(user_data, ignore_errors=True)


def full_page_png(driver: Any, url: str, path: Path, width: int = 1280) -> Path:
    """A screenshot of the whole page at url (the window grown to the page's height)."""
    driver.get(url)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, min(max(height, 400), 8000))
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
