"""Vendor the browser assets the HTML reports load (GX Data Docs, DVC plots) from the npm registry.

The reports must render with no network, so the scripts, stylesheets and fonts their pages name
on CDNs are kept in the package, `src/mtlrec/static/vendor/<package>/`, each at the version
the CDN link names (GX 1.24.1's templates; the newest Vega 5 / Vega-Lite 5 / Vega-Embed 6, as
GX's `vega@5` links resolve to). Each tarball is checked against its pinned npm integrity
(sha512) before a file is taken from it; MANIFEST.json records version, license, tarball and
each file's sha256 (tests/test_static.py checks the files against it). Rerun only to change a
version (the only step that needs the network):

    python scripts/vendor_report_assets.py
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
VENDOR = Path(__file__).resolve().parents[1] / "src" / "mtlrec" / "static" / "vendor"

# (npm package, version, npm dist.integrity, files taken from the tarball's package/ folder)
PINS: list[tuple[str, str, str, list[str]]] = [
    ("bootstrap", "4.3.1",
     "sha512-rXqOmH1VilAt2DyPzluTi2blhk17bO7ef+zLLPlWvG494pDxcM234pJ8wTc/6R40UWizAIIMgxjvxZg5kmsbag==",
     ["dist/css/bootstrap.min.css", "dist/js/bootstrap.min.js", "LICENSE"]),
    ("bootstrap-table", "1.19.1",
     "sha512-WvV+l1AI/C+zThaKmfHmi/IuayVNB0qdFyEhFx1jyZhO0oLtNJNANkCR3rvJf6Dkh72dsLElxpE/bzK9seEQLA==",
     ["dist/bootstrap-table.min.css", "dist/bootstrap-table.min.js",
      "dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
      "dist/extensions/filter-control/bootstrap-table-filter-control.min.js", "LICENSE"]),
    ("bootstrap-datepicker", "1.9.0",
     "sha512-9rYYbaVOheGYxjOr/+bJCmRPihfy+LkLSg4fIFMT9Od8WwWB/MB50w0JO1eBgKUMbb7PFHQD5uAfI3ArAxZRXA==",
     ["dist/css/bootstrap-datepicker.min.css", "dist/js/bootstrap-datepicker.min.js", "LICENSE"]),
    ("@forevolve/bootstrap-dark", "1.1.0",
     "sha512-A3ucpEpxPoTVO490lZZCfjPXxv832l7mm1IxX3bXyxvgwnPGXDLyh7dWrphXKO8YBAu3EswbBEu3VSW8NRMW3A==",
     ["dist/css/bootstrap-prefers-dark.min.css", "LICENSE"]),
    ("jquery", "3.7.1",
     "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==",
     ["dist/jquery.min.js", "LICENSE.txt"]),
    ("popper.js", "1.12.9",  # MIT (package.json and the file's header; the tarball has no LICENSE)
     "sha512-s0EEi9xiSCdqz9lV4IiVH5yIZnDX/U1t0tCjB+0jXx9jW8lrR7kOpVupiUg175ogqVoudpDXHF1p6dKATCHMeg==",
     ["dist/umd/popper.min.js"]),
    ("@fortawesome/fontawesome-free", "6.6.0",  # woff2 only: every browser that runs the
     # reports takes the first source of each @font-face; the .ttf fallbacks are left out
     "sha512-60G28ke/sXdtS9KZCpZSHHkCbdsOGEhIUGlwq6yhY74UpTiToIh8np7A8yphhM4BWsvNFtIvLpi4co+h9Mr9Ow==",
     ["css/all.min.css", "webfonts/fa-brands-400.woff2", "webfonts/fa-regular-400.woff2",
      "webfonts/fa-solid-900.woff2", "webfonts/fa-v4compatibility.woff2", "LICENSE.txt"]),
    ("vega", "5.33.1",  # BSD-3-Clause (package.json; the tarball has no LICENSE)
     "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==",
     ["build/vega.min.js"]),
    ("vega-lite", "5.23.0",
     "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
     ["build/vega-lite.min.js", "LICENSE"]),
    ("vega-embed", "6.29.0",
     "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
     ["build/vega-embed.min.js", "LICENSE"]),
]  # fmt: skip


def folder(package: str) -> str:
    """`@scope/name` -> `name`: one folder per package under vendor/."""
    return package.rsplit("/", 1)[-1]


def fetch(package: str, version: str, integrity: str) -> tuple[str, tarfile.TarFile, str]:
    url = f"{REGISTRY}/{package}/-/{folder(package)}-{version}.tgz"
    data = urllib.request.urlopen(url, timeout=60).read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != integrity:
        sys.exit(f"{package}@{version}: integrity {digest} is not the pinned {integrity}")
    return url, tarfile.open(fileobj=io.BytesIO(data)), digest


def vendor(package: str, version: str, integrity: str, files: list[str]) -> dict:
    url, archive, digest = fetch(package, version, integrity)
    meta = json.load(archive.extractfile("package/package.json"))
    target = VENDOR / folder(package)
    shutil.rmtree(target, ignore_errors=True)
    hashes = {}
    for name in files:
        data = archive.extractfile(f"package/{name}").read()
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)
        hashes[f"{folder(package)}/{name}"] = hashlib.sha256(data).hexdigest()
    return {"package": package, "version": version, "license": meta.get("license"),
            "tarball": url, "integrity": digest, "files": hashes}  # fmt: skip


def main() -> None:
    VENDOR.mkdir(parents=True, exist_ok=True)
    manifest = [vendor(*pin) for pin in PINS]
    (VENDOR / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum((VENDOR / f).stat().st_size for entry in manifest for f in entry["files"])
    print(f"vendored {len(manifest)} packages, {total / 1e6:.1f} MB, into {VENDOR}")


if __name__ == "__main__":
    main()
