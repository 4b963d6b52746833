"""The ingest ledger: which content was accepted under which batch, so no batch lands twice.

A batch is identified by `<table>/<batch_id>` and its content by a hash of its rows (column
names, dtypes and the multiset of row hashes: the same rows re-encoded or reordered are the same
content). The same content under another batch id is a duplicate; the same batch id validated
again (an idempotent rerun, or a corrected batch) is not.

The ledger lives outside `data/validated`, which DVC deletes before each run: it persists
what earlier runs accepted. Entries for the batches in this run's landing zone are decided
afresh, so a corrected or removed batch never blocks another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def content_digest(frame: pd.DataFrame, raw: bytes) -> str:
    """sha256 of the rows, independent of row order and file encoding."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    try:
        rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        digest.update(np.sort(rows).tobytes())
    except TypeError:  # unhashable cells (lists, dicts): fall back to the file's bytes
        digest.update(raw)
    return digest.hexdigest()


@dataclass
class Ledger:
    path: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Entries of the batches landed now, set aside until this run accepts them again.
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, landed: set[str]) -> Ledger:
        """The persisted ledger, less the batches landed now (this run decides them again)."""
        entries = json.loads(path.read_text()) if path.is_file() else {}
        kept = {key: entry for key, entry in entries.items() if key not in landed}
        pending = {key: entry for key, entry in entries.items() if key in landed}
        return cls(path, kept, pending)

    def duplicate_of(self, key: str, digest: str) -> str | None:
        """The other batch that was accepted with this content, if any."""
        for other, entry in self.entries.items():
            if other != key and entry["sha256"] == digest:
                return f"{other} (accepted {entry['accepted_at']})"
        return None

    def accept(self, key: str, digest: str, rows: int) -> None:
        before = self.pending.get(key, {})
        same = before.get("sha256") == digest  # a rerun keeps the first acceptance time
        accepted_at = before["accepted_at"] if same else datetime.now(UTC).isoformat("T", "seconds")
        self.entries[key] = {"sha256": digest, "rows": rows, "accepted_at": accepted_at}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        partial.replace(self.path)  # atomic: a crash never leaves half a ledger
