"""Put each landing batch in exactly one place, and never lose a row.

- passed: a byte copy in `validated/<table>/<batch>.parquet`;
- split (row policy `split`): the good rows in `validated/`, the bad rows with a `reason` column
  in `quarantine/<table>/<batch>/rows.parquet`, beside `result.json`;
- quarantined: the original file in `quarantine/<table>/<batch>/`, beside `result.json` (the
  causes in words) and `gx_result.json` (the full GX validation result).

A quarantine folder that a later run replaces with different content, or that the batch leaves
because it now passes, moves to `quarantine/resolved/<table>/<batch>/<time>/`: what was held
back stays on record after the fix.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mtlrec.validation.results import Failure, Status

RESOLVED = "resolved"


@dataclass(frozen=True)
class Verdict:
    """What the gate decided for one batch, before it is filed."""

    table: str
    batch_id: str
    source: Path
    digest: str | None
    status: Status
    failures: list[Failure]
    notes: list[str]
    bad_rows: pd.Series | None = None  # file row -> reason, for a split batch
    gx_results: list[dict[str, Any]] | None = None
    docs_pages: list[str] | None = None


def file_batch(verdict: Verdict, frame: pd.DataFrame, validated: Path, quarantine: Path) -> str:
    """Write the batch where it belongs; return that place."""
    accepted = validated / verdict.table / verdict.source.name
    held = quarantine / verdict.table / verdict.batch_id
    _retire(held, verdict, quarantine)
    if verdict.status == "quarantined":
        accepted.unlink(missing_ok=True)
        held.mkdir(parents=True, exist_ok=True)
        shutil.copy2(verdict.source, held / verdict.source.name)
        _write_result(held, verdict, rows=len(frame))
        return str(held)
    accepted.parent.mkdir(parents=True, exist_ok=True)
    if verdict.status == "passed":
        shutil.copy2(verdict.source, accepted)
        return str(accepted)
    good, bad = _split(frame, verdict.bad_rows)
    good.to_parquet(accepted, index=False)
    held.mkdir(parents=True, exist_ok=True)
    bad.to_parquet(held / "rows.parquet", index=False)
    _write_result(held, verdict, rows=len(frame))
    return str(accepted)


def _split(frame: pd.DataFrame, reasons: pd.Series | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    assert reasons is not None, "a split batch needs the reason of every bad row"
    is_bad = frame.index.isin(reasons.index)
    bad = frame[is_bad].assign(reason=reasons)
    bad = bad.reset_index()  # keep the file row beside the reason: where it came from
    return frame[~is_bad].reset_index(drop=True), bad


def _retire(held: Path, verdict: Verdict, quarantine: Path) -> None:
    """Move an earlier quarantine record aside unless it is this very content failing again."""
    record = held / "result.json"
    if not record.is_file():
        shutil.rmtree(held, ignore_errors=True)
        return
    previous = json.loads(record.read_text())
    if verdict.status != "passed" and previous.get("content_sha256") == verdict.digest:
        shutil.rmtree(held)  # the same content again: the new record replaces it
        return
    stamp = str(previous.get("validated_at", "unknown")).replace(":", "")
    target = quarantine / RESOLVED / verdict.table / verdict.batch_id / stamp
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    shutil.move(str(held), str(target))


def _write_result(held: Path, verdict: Verdict, rows: int) -> None:
    split = verdict.status == "split" and verdict.bad_rows is not None
    rejected = len(verdict.bad_rows) if split else rows
    summary = {
        "table": verdict.table,
        "batch_id": verdict.batch_id,
        "source": str(verdict.source),
        "content_sha256": verdict.digest,
        "status": verdict.status,
        "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "rejected_rows": rejected,
        "failures": [failure.as_json() for failure in verdict.failures],
        "notes": verdict.notes,
        "data_docs": verdict.docs_pages or [],
    }
    (held / "result.json").write_text(json.dumps(summary, indent=2, default=str))
    if verdict.gx_results:
        gx_result = json.dumps(verdict.gx_results, indent=1, default=str)
        (held / "gx_result.json").write_text(gx_result)
