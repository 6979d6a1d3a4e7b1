"""Headless Chromium driven by Selenium for the explorer tests; ``needs_browser`` skips a test
with the reason when Chromium, chromedriver or selenium is missing (CI installs all three:
.ci/run and the [dev] extra)."""

from __future__ import annotations

import shutil
import tempfile
import time

import pytest

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
CHROMEDRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

_MISSING = [
    name
    for name, ok in (
        ("chromium (apt-get install chromium)", CHROMIUM),
        ("chromedriver (apt-get install chromium-driver)", CHROMEDRIVER),
        ("selenium (pip install -e '.[dev]')", HAVE_SELENIUM),
    )
    if not ok
]
MISSING_REASON = (
    "browser test needs " + ", ".join(_MISSING) + "; .ci/run installs them" if _MISSING else ""
)
needs_browser = pytest.mark.skipif(bool(_MISSING), reason=MISSING_REASON)

# What headless Chromium needs on a machine without a network or a display; the proxy is a
# closed local port, so any request the page made to the network would fail and be logged.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
    "--proxy-server=127.0.0.1:9",
)  # fmt: skip  (Chromium never sends loopback addresses through the proxy: serve tests work)


def start_chromium(download_dir: str | None = None):
    """A Selenium Chrome driver on headless Chromium with a new empty profile; the browser's
    console is readable with ``driver.get_log("browser")``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if download_dir:
        options.add_experimental_option(
            "prefs",
            {"download.default_directory": download_dir, "download.prompt_for_download": False},
        )
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
