"""Headless Chromium for the tests that look at a page: the Airflow UI, and the HTML reports
opened as files with the network cut off.

A report is opened offline with Chrome's own network emulation (CDP
`Network.emulateNetworkConditions`, offline) and every request the page makes is read from the
performance log, so a test sees both what rendered and what the page tried to fetch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WINDOW = (1600, 1000)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")


@contextmanager
def chromium_driver(profile: Path, *, log_network: bool = False) -> Iterator:
    """A Chromium WebDriver; with `log_network`, every request lands in its performance log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = str(CHROMIUM)
    if log_network:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(20)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass(frozen=True)
class OfflinePage:
    url: str
    screenshot: Path
    remote_requests: list[str]  # what the page tried to fetch beyond file:// and data:
    console_errors: list[str]
    colours: int  # distinct colours in the screenshot (1: a flat, blank page)

    def describe(self) -> str:
        """For assertion messages: where to look."""
        return (
            f"{self.url}\n  screenshot: {self.screenshot}\n  remote requests: "
            f"{self.remote_requests}\n  console errors: {self.console_errors}"
        )


def open_offline(driver, page: Path, screenshot: Path, settle: float = 1.0) -> OfflinePage:
    """Open `page` as a file:// URL with the network offline; wait for the document to load
    and `settle` seconds more (scripts that draw after load), then take a screenshot."""
    driver.get_log("performance")  # drop what earlier pages logged
    driver.get_log("browser")
    driver.execute_cdp_cmd("Network.enable", {})
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    driver.get(page.as_uri())
    deadline = time.monotonic() + 30
    while driver.execute_script("return document.readyState") != "complete":
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    time.sleep(settle)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(screenshot))
    return OfflinePage(
        url=page.as_uri(),
        screenshot=screenshot,
        remote_requests=_remote_requests(driver.get_log("performance")),
        console_errors=[e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"],
        colours=distinct_colours(screenshot),
    )


def _remote_requests(entries: list[dict]) -> list[str]:
    found = []
    for entry in entries:
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if not url.startswith(LOCAL_SCHEMES):
                found.append(url)
    return sorted(set(found))


def distinct_colours(png: Path, cap: int = 1000) -> int:
    """How many colours the screenshot has (up to `cap`): a page whose styles or scripts did
    not load is white with black text, a blank one a single colour."""
    from PIL import Image

    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=cap)
    return cap if colours is None else len(colours)


def visible_box(driver, element) -> dict:
    """The element's box in the viewport and whether it lies wholly on the first screen."""
    return driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, width: r.width, height: r.height,"
        " onFirstScreen: r.width > 0 && r.height > 0 && r.top >= 0"
        "   && r.bottom <= window.innerHeight};",
        element,
    )
