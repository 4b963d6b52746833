"""Names that come from data and become paths, checked against strict patterns before any use.

A landing file's stem is its batch id, and the batch id names folders that are later moved
(quarantine records); a stem like `..` would name the quarantine itself. Every such name must
match `SAFE_NAME`; one that does not is never used as a path: the batch is held under a safe id
derived from it (`unsafe-<hash>`), with the original name on record.
"""

from __future__ import annotations

import hashlib
import re

from mtlrec.errors import UserError

# One folder or file-stem name: letters, digits, `_` and `-`, never a dot (no `.`, `..` or
# hidden names), no separator, bounded length, ASCII only.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
# A batch is a day of data, optionally with a suffix telling batches of one day apart
# (`2026-01-15_served-v3`: impressions logged by serving).
BATCH_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})(?:_[A-Za-z0-9][A-Za-z0-9-]{0,63})?")


class UnsafeName(UserError, ValueError):
    """A name from data that must not become a path."""


def is_safe(name: str) -> bool:
    return isinstance(name, str) and bool(SAFE_NAME.fullmatch(name))


def check_safe(name: str, what: str = "name") -> str:
    if not is_safe(name):
        raise UnsafeName(f"{shown(name)} is not a safe {what} (letters, digits, _ and -)")
    return name


def safe_batch_id(name: str) -> str:
    """`name` itself when it is safe as a folder name, else a stable id that is."""
    if is_safe(name):
        return name
    raw = name.encode("utf-8", "surrogateescape")
    return f"unsafe-{hashlib.sha256(raw).hexdigest()[:16]}"


def batch_day(batch_id: str) -> str | None:
    """The YYYY-MM-DD that a batch id names (None when it names none)."""
    match = BATCH_DAY.fullmatch(batch_id) if isinstance(batch_id, str) else None
    return match.group(1) if match else None


def shown(name: object) -> str:
    """A name as a person can read it in one line (escaped, at most 80 characters)."""
    text = ascii(name)
    return text if len(text) <= 80 else f"{text[:60]}...{text[-12:]} ({len(str(name))} chars)"
