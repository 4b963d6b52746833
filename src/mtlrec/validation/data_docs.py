"""Data Docs that render with no network, this run's results first.

GX 1.24's page templates load Bootstrap, jQuery, bootstrap-table, Font Awesome, Vega and the GX
logo from CDNs, and a site cannot override them: GX's own templates come first in its Jinja
loader, so `plugins/custom_data_docs/views` only adds templates. After each build,
`localize` therefore points every page at the copies vendored in `mtlrec/static/vendor`
(copied beside the pages, under `static/vendor/`, so the folder works wherever it is opened)
and fails on any remote asset it does not know, rather than leave a page that needs the network.

`CurrentRunFirstIndexBuilder` (named in gx/great_expectations.yml) lists the newest run's
results first, its failed ones at the top, so the failing batch is on the index's first page
however many earlier results `validate.keep_results` keeps.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from great_expectations.render.renderer.site_builder import DefaultSiteIndexBuilder

from mtlrec.static import VENDOR, vendored

# The remote assets of GX 1.24.1's templates, each to its vendored copy (the CDN's version;
# bootstrap-table-filter-control's CSS is linked at 1.19.0 beside its 1.19.1 script: both
# resolve to 1.19.1's, and bootstrap-prefers-dark.css to the same file minified).
ASSETS = {
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table/dist/bootstrap-table.min.css",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap/dist/css/bootstrap.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark/dist/css/bootstrap-prefers-dark.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/build/vega-embed.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "fontawesome-free/css/all.min.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js/dist/umd/popper.min.js",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap/dist/js/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js",
}  # fmt: skip
# The navbar logo is fetched from GX's S3 with this context's id and the time appended (a
# tracking pixel as much as a logo); the dark theme's logo likewise. GX copies its own logo
# into every site's static/images/.
LOGO = "images/logo-long.png"
_REMOTE_LOGO = r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/[\w.-]+\.png"

_SCRIPT = re.compile(r'<script\b[^>]*\bsrc="(https?://[^"]+)"[^>]*>')
_STYLESHEET = re.compile(r'<link\b[^>]*\bhref="(https?://[^"]+)"[^>]*>')
_LOGO_IMG = re.compile(rf'src="{_REMOTE_LOGO}[^"]*"')
_LOGO_CSS = re.compile(rf"url\(\s*['\"]?{_REMOTE_LOGO}['\"]?\s*\)")
# What a browser would fetch by itself: an element's src/href (links `<a>` only when clicked)
# or a CSS url(). An unknown one fails the build.
# GX 1.24 puts a validation page's favicon one folder too high (a 404 on every page).
_FAVICON = re.compile(r'<link rel="shortcut icon" href="[^"]*"')
# A failed validation's page opens on its failures: GX's own "Failed Only" filter, switched on
# once the page has loaded ("Show All" brings back the rest). Otherwise the failed
# expectation sits under every passing one, several screens down.
_FAILED_STATUS = re.compile(r'Status:</span>\s*<i class="fas fa-times text-danger"')
FAILED_FIRST = (
    '<script id="mtlrec-failed-first">$(function () { $("#option2").parent().click(); });</script>'
)
_REMOTE_LOAD = re.compile(
    r'<(?:script|link|img|iframe|source|embed|object)\b[^>]*\b(?:src|href|data)="(https?://[^"]+)"'
    r"|url\(\s*['\"]?(https?://[^'\")\s]+)"
    r"|@import\s+['\"](https?://[^'\"]+)"
)


class RemoteAssetError(RuntimeError):
    """A Data Docs page loads a remote asset with no vendored copy (a GX upgrade changed its
    templates): vendor it (scripts/vendor_report_assets.py) and map it in ASSETS."""


def localize(site: Path) -> int:
    """Copy the vendored assets into `site/static/vendor` and point every page of the site at
    them; return how many pages changed. Pages rewritten before are left as they are."""
    static = site / "static"
    shutil.copytree(VENDOR, static / "vendor", dirs_exist_ok=True)
    changed = 0
    for page in sorted(site.rglob("*.html")):
        html = page.read_text(encoding="utf-8")
        local = localize_page(html, Path(os.path.relpath(static, page.parent)).as_posix())
        if local != html:
            page.write_text(local, encoding="utf-8")
            changed += 1
        remote = remote_loads(local)
        if remote:
            raise RemoteAssetError(f"{page} loads {remote[0]}, which is not vendored")
    return changed


def localize_page(html: str, static: str) -> str:
    """The page with each known remote asset replaced by its copy under `static` (relative),
    its favicon found, and a failed validation opening on its failures."""

    def local(match: re.Match, tag: str) -> str:
        path = ASSETS.get(match.group(1))
        if path is None:
            return match.group(0)
        vendored(path)  # fails if the mapping names a file that is not there
        # A bare tag: integrity/crossorigin attributes would make Chrome refuse a file:// copy.
        return tag.format(f"{static}/vendor/{path}")

    html = _SCRIPT.sub(lambda m: local(m, '<script src="{}">'), html)
    html = _STYLESHEET.sub(lambda m: local(m, '<link rel="stylesheet" href="{}">'), html)
    html = _LOGO_IMG.sub(f'src="{static}/{LOGO}"', html)
    html = _LOGO_CSS.sub(f"url('{static}/{LOGO}')", html)
    html = _FAVICON.sub(f'<link rel="shortcut icon" href="{static}/images/favicon.ico"', html)
    if _FAILED_STATUS.search(html) and FAILED_FIRST not in html:
        html = html.replace("</body>", f"{FAILED_FIRST}\n</body>", 1)
    return html


def remote_loads(html: str) -> list[str]:
    """Every remote URL the page would load by itself."""
    return [next(url for url in match.groups() if url) for match in _REMOTE_LOAD.finditer(html)]


class CurrentRunFirstIndexBuilder(DefaultSiteIndexBuilder):
    """The site index with the newest run's validations first, failed before passed, then by
    batch and suite; earlier runs follow, newest first. The index table sorts by run time on
    load and keeps this order among equal times (a stable sort)."""

    def _add_validations_to_index_links(self, index_links_dict: Any, *args: Any) -> None:
        super()._add_validations_to_index_links(index_links_dict, *args)
        links = index_links_dict.get("validations_links")
        if links:
            links.sort(key=_index_order)


def _index_order(link: dict[str, Any]) -> tuple:
    run_time = link["run_time"].timestamp() if link.get("run_time") else 0.0
    return (
        -run_time,
        bool(link.get("validation_success")),
        link.get("run_name") or "",
        link.get("expectation_suite_name") or "",
    )
