"""Data Docs open with no network, this run's failure first.

The site is built by the gate itself (three runs over a small landing zone: two passing, then
one with a broken impressions batch) and opened in headless Chromium as file:// pages with the
network offline. Each check is also run against the site as GX writes it (CDN links, the
first run's copy, taken before `localize`), where it must fail: a check that cannot fail
proves nothing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from mtlrec.validation import data_docs
from tests.browser import OfflinePage, chromium_driver, open_offline, visible_box
from tests.validation.conftest import failing_run, make_workspace, run_gate

BROKEN_DAY = 2  # the third impressions day: in GX's own order its row is not first
INDEX_TABLE = "ge-index-page-validation-results-table"


@dataclass(frozen=True)
class Site:
    root: Path
    index: Path
    failing_page: Path  # the page the failure message names for the broken batch
    batch: str  # the broken batch's run name
    cdn_index: Path  # the first run's index as GX wrote it, CDN links and all


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, tiny_shop: Path) -> Site:
    root = make_workspace(tmp_path_factory.mktemp("docs"), tiny_shop, impression_days=3)
    docs = root / "reports" / "data_docs"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data_docs, "localize", lambda site: 0)
        run_gate(root)
    shutil.copytree(docs, root / "cdn_docs")
    run_gate(root)
    broken = sorted((root / "landing" / "impressions").glob("*.parquet"))[BROKEN_DAY]
    frame = pd.read_parquet(broken)
    frame.loc[frame.index[:2], "item_id"] = 999_999_999  # items that do not exist
    frame.to_parquet(broken, index=False)
    message = failing_run(root)
    pages = [line.split("report: ", 1)[1] for line in message.splitlines() if "report: " in line]
    assert len(pages) == 1, message
    return Site(
        root, docs / "index.html", Path(pages[0]), f"impressions-{broken.stem}",
        root / "cdn_docs" / "index.html",
    )  # fmt: skip


@pytest.fixture(scope="module")
def driver(site: Site, chromium: None, tmp_path_factory: pytest.TempPathFactory):
    with chromium_driver(tmp_path_factory.mktemp("profile"), log_network=True) as driver:
        yield driver


def page_problems(driver, page: OfflinePage) -> list[str]:
    """What shows that a page did not render as GX meant it: requests beyond the page's
    files, Bootstrap's font stack missing (its CSS did not load), the Font Awesome font
    missing, a flat screenshot."""
    problems = [f"fetched {url}" for url in page.remote_requests]
    font = driver.execute_script("return getComputedStyle(document.body).fontFamily")
    if "Segoe UI" not in font:
        problems.append(f"body font {font!r}: Bootstrap's stylesheet did not apply")
    if not driver.execute_script("return document.fonts.check('900 16px \"Font Awesome 6 Free\"')"):
        problems.append("Font Awesome's font is not loaded")
    if page.colours < 20:
        problems.append(f"the screenshot has {page.colours} colours: blank")
    return problems


def index_problems(driver, page: OfflinePage, batch: str) -> list[str]:
    """Also: the validation table is filled (jQuery and bootstrap-table build it) and its first
    row, on the first screen, is the broken batch's failed result."""
    from selenium.webdriver.common.by import By

    problems = page_problems(driver, page)
    driver.implicitly_wait(0)
    rows = driver.find_elements(By.CSS_SELECTOR, f"table.{INDEX_TABLE} tbody tr")
    driver.implicitly_wait(20)
    if not rows or not visible_box(driver, rows[0])["onFirstScreen"]:
        return [*problems, f"no validation row on the first screen ({len(rows)} rows)"]
    first = rows[0]
    if batch not in first.text or not first.find_elements(By.CSS_SELECTOR, ".fa-times.text-danger"):
        problems.append(f"the first row is {first.text!r}, not the failed {batch}")
    return problems


def failed_expectation_problems(driver, page: OfflinePage) -> list[str]:
    """Also: the failed expectation's row (its red cross and what was unexpected) is on the
    first screen."""
    from selenium.webdriver.common.by import By

    problems = page_problems(driver, page)
    driver.implicitly_wait(0)
    crosses = driver.find_elements(By.CSS_SELECTOR, "td .fa-times.text-danger")
    driver.implicitly_wait(20)
    rows = [cross.find_element(By.XPATH, "./ancestor::tr[1]") for cross in crosses]
    shown = [row for row in rows if visible_box(driver, row)["onFirstScreen"]]
    if not shown:
        problems.append(f"no failed expectation on the first screen ({len(rows)} in the page)")
    elif "999999999" not in shown[0].text:
        problems.append(f"the failed expectation shown is {shown[0].text!r}")
    return problems


def test_index_lists_this_runs_failure_first_offline(site: Site, driver, tmp_path: Path) -> None:
    page = open_offline(driver, site.index, tmp_path / "index.png")
    assert index_problems(driver, page, site.batch) == [], page.describe()


def test_failing_batch_page_shows_the_failed_expectation_first(
    site: Site, driver, tmp_path: Path
) -> None:
    page = open_offline(driver, site.failing_page, tmp_path / "failing_batch.png")
    assert failed_expectation_problems(driver, page) == [], page.describe()
    assert "Show All" in driver.page_source  # the rest is one click away


def test_every_page_loads_only_local_files(site: Site) -> None:
    pages = sorted(site.index.parent.rglob("*.html"))
    assert len(pages) > 10
    remote = {str(p): data_docs.remote_loads(p.read_text()) for p in pages}
    assert {p: urls for p, urls in remote.items() if urls} == {}
    suite = site.index.parent / "expectations" / "impressions.html"
    assert suite in pages and "static/vendor/" in suite.read_text()


def test_the_checks_fail_on_the_cdn_linked_site(site: Site, driver, tmp_path: Path) -> None:
    page = open_offline(driver, site.cdn_index, tmp_path / "cdn_index.png")
    problems = index_problems(driver, page, site.batch)
    assert any(p.startswith("fetched https://") for p in problems), page.describe()
    assert any("no validation row" in p for p in problems), problems
    assert data_docs.remote_loads(site.cdn_index.read_text())


def test_localize_points_each_cdn_asset_at_its_vendored_copy() -> None:
    tags = "".join(
        f'<script src="{url}" integrity="sha384-x" crossorigin="anonymous"></script>'
        if url.endswith(".js") or "/npm/vega" in url
        else f'<link rel="stylesheet" type="text/css" href="{url}"/>'
        for url in data_docs.ASSETS
    )
    logo = (
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/'
        'logo-long.png?d=20261203T102444Z&dataContextId=adf521f0"/>'
    )
    link = '<a href="https://greatexpectations.io">Great Expectations</a>'
    html = f"<html><head>{tags}</head><body>{logo}{link}</body></html>"
    assert len(data_docs.remote_loads(html)) == len(data_docs.ASSETS) + 1
    local = data_docs.localize_page(html, "../static")
    assert data_docs.remote_loads(local) == []
    assert "integrity" not in local and "crossorigin" not in local  # refused on file:// copies
    assert '<script src="../static/vendor/vega/build/vega.min.js">' in local
    assert 'src="../static/images/logo-long.png"' in local and link in local
    assert data_docs.localize_page(local, "../static") == local


def test_an_unknown_remote_asset_fails_the_build(tmp_path: Path) -> None:
    page = tmp_path / "site" / "index.html"
    page.parent.mkdir()
    page.write_text('<html><head><script src="https://cdn.example.com/new.js"></script></head>')
    with pytest.raises(data_docs.RemoteAssetError, match="https://cdn.example.com/new.js"):
        data_docs.localize(page.parent)
