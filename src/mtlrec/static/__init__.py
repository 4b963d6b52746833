"""Browser assets vendored for the HTML reports, so that they render with no network.

`vendor/` holds the scripts, stylesheets and fonts that GX Data Docs and DVC plots load, each at
a pinned npm version; `vendor/MANIFEST.json` records versions, licenses, tarballs and sha256.
`scripts/vendor_report_assets.py` wrote them (the only step that used the network).
"""

from __future__ import annotations

from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "vendor"


def vendored(path: str) -> Path:
    """A vendored file by its path under vendor/ (`vega/build/vega.min.js`); fails if absent."""
    file = VENDOR / path
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not vendored under {VENDOR}")
    return file
