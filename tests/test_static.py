"""The vendored browser assets: each file is the one its pinned npm tarball held."""

from __future__ import annotations

import hashlib
import json

from mtlrec.static import PLOTS_PAGE_BUNDLES, VENDOR, plots_page


def test_every_vendored_file_is_listed_with_its_sha256_version_and_license() -> None:
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text())
    listed = {path: digest for entry in manifest for path, digest in entry["files"].items()}
    on_disk = {
        path.relative_to(VENDOR).as_posix()
        for path in VENDOR.rglob("*")
        if path.is_file() and path.name != "MANIFEST.json"
    }
    assert on_disk == set(listed)
    changed = [
        path for path, digest in listed.items()
        if hashlib.sha256((VENDOR / path).read_bytes()).hexdigest() != digest
    ]  # fmt: skip
    assert changed == [], "edited by hand? rerun scripts/vendor_report_assets.py"
    for entry in manifest:
        assert entry["version"] and entry["license"], entry["package"]
        assert entry["tarball"].startswith("https://registry.npmjs.org/"), entry["package"]
        assert entry["integrity"].startswith("sha512-"), entry["package"]


def test_plots_page_carries_vega_inline_and_loads_nothing() -> None:
    page = plots_page()
    assert "{plot_divs}" in page and "{refresh_tag}" in page
    # No {scripts}: DVC would put its CDN <script src> tags there.
    assert "{scripts}" not in page and "sourceMappingURL" not in page
    assert "<script src" not in page and "<link" not in page
    assert page.count("<script>") == len(PLOTS_PAGE_BUNDLES)
    for bundle in PLOTS_PAGE_BUNDLES:
        first_line = (VENDOR / bundle).read_text().splitlines()[0]
        assert first_line in page, bundle
