"""Put each landing batch in exactly one place, and never lose a row.

- passed: a byte copy in `validated/<table>/<batch>.parquet`;
- split (row policy `split`): the good rows in `validated/`, the bad rows with a `reason` column
  in `quarantine/<table>/<batch>/rows.parquet`, beside `result.json`;
- quarantined: the original file in `quarantine/<table>/<batch>/`, beside `result.json` (the
  causes in words) and `gx_result.json` (the full GX validation result).

A quarantine folder that a later run replaces with different content, or that the batch leaves
because it now passes, moves to `quarantine/resolved/<table>/<batch>/<time>/`: what was held
back stays on record after the fix. The quarantine is append-only: nothing in it is ever
deleted, and every folder name in it is a checked batch id (`mtlrec.names`), never a raw
file name, so no file name can reach outside its own record.
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mtlrec.names import check_safe, is_safe, safe_batch_id
from mtlrec.validation.results import Failure, Status

RESOLVED = "resolved"
RESULT_FILE = "result.json"


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
    failed_pages: list[str] | None = None  # the Data Docs pages of the suites that failed


def file_batch(verdict: Verdict, frame: pd.DataFrame, validated: Path, quarantine: Path) -> str:
    """Write the batch where it belongs; return that place."""
    check_safe(verdict.batch_id, "batch id")  # a folder name below: never a raw file name
    accepted = validated / verdict.table / f"{verdict.batch_id}.parquet"
    held = quarantine / verdict.table / verdict.batch_id
    unchanged = _retire(held, verdict, quarantine)
    if verdict.status == "quarantined":
        accepted.unlink(missing_ok=True)
        if not unchanged:
            _hold(held, verdict, rows=len(frame))
        return str(held)
    accepted.parent.mkdir(parents=True, exist_ok=True)
    if verdict.status == "passed":
        shutil.copy2(verdict.source, accepted)
        return str(accepted)
    good, bad = _split(frame, verdict.bad_rows)
    good.to_parquet(accepted, index=False)
    if not unchanged:
        staging = _staging(held)
        bad.to_parquet(staging / "rows.parquet", index=False)
        _write_result(staging, verdict, rows=len(frame))
        staging.rename(held)
    return str(accepted)


def pending(landing: Path, validated: Path, quarantine: Path) -> list[str]:
    """Landing batches not yet filed: no identical validated copy and no quarantine verdict
    newer than the file. Identical by content, not by mtime: DVC restores a validated batch
    from its cache (`dvc repro` of an unchanged stage) with a new mtime."""
    found = []
    for batch in sorted(landing.glob("*/*.parquet")):
        table, stat = batch.parent.name, batch.stat()
        batch_id = safe_batch_id(batch.stem)
        accepted = validated / table / f"{batch_id}.parquet"
        if accepted.is_file() and filecmp.cmp(accepted, batch, shallow=False):
            continue
        verdict = quarantine / table / batch_id / RESULT_FILE
        if verdict.is_file() and verdict.stat().st_mtime >= stat.st_mtime:
            continue
        found.append(f"{table}/{batch.name}")
    return found


def kept_name(verdict: Verdict) -> str:
    """The name the original file keeps in quarantine: its own when that is a batch file's."""
    name = verdict.source.name
    return name if is_safe(verdict.source.stem) else f"{verdict.batch_id}.parquet"


def _hold(held: Path, verdict: Verdict, rows: int) -> None:
    # Written beside the final folder and renamed: a crash leaves no half record.
    staging = _staging(held)
    shutil.copy2(verdict.source, staging / kept_name(verdict))
    _write_result(staging, verdict, rows=rows)
    staging.rename(held)


def _staging(held: Path) -> Path:
    staging = held.with_name(f".{held.name}.incoming")
    if staging.exists():  # what a crash left half-written: set aside, not deleted
        _set_aside(staging, held.parent.parent / RESOLVED / held.parent.name / held.name, "partial")
    staging.mkdir(parents=True)
    return staging


def _split(frame: pd.DataFrame, reasons: pd.Series | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    assert reasons is not None, "a split batch needs the reason of every bad row"
    is_bad = frame.index.isin(reasons.index)
    bad = frame[is_bad].assign(reason=reasons)
    bad = bad.reset_index()  # keep the file row beside the reason: where it came from
    return frame[~is_bad].reset_index(drop=True), bad


def _retire(held: Path, verdict: Verdict, quarantine: Path) -> bool:
    """Move an earlier quarantine record aside, unless it is this very content failing again
    (then it stays as it is, and True says so: a rerun changes nothing)."""
    target = quarantine / RESOLVED / verdict.table / verdict.batch_id
    if not held.exists():
        return False
    record = held / RESULT_FILE
    if not record.is_file():  # a folder no run of ours completed: keep it on record
        _set_aside(held, target, "incomplete")
        return False
    try:
        previous = json.loads(record.read_text())
    except (ValueError, UnicodeDecodeError):
        previous = {}
    if verdict.status != "passed" and previous.get("content_sha256") == verdict.digest:
        return True
    _set_aside(held, target, str(previous.get("validated_at", "unknown")))
    return False


def _set_aside(folder: Path, target_parent: Path, stamp: str) -> None:
    """Move `folder` to `target_parent/<stamp>` (a new name if that is taken): never delete."""
    label = re.sub(r"[^0-9A-Za-z+-]", "", stamp)[:40] or "unknown"
    target_parent.mkdir(parents=True, exist_ok=True)
    target, n = target_parent / label, 1
    while target.exists():
        target, n = target_parent / f"{label}-{n}", n + 1
    shutil.move(str(folder), str(target))


def _write_result(held: Path, verdict: Verdict, rows: int) -> None:
    split = verdict.status == "split" and verdict.bad_rows is not None
    rejected = len(verdict.bad_rows) if split else rows
    summary = {
        "table": verdict.table,
        "batch_id": verdict.batch_id,
        "source": ascii(str(verdict.source))[1:-1],  # any file name, as printable text
        "kept_as": kept_name(verdict),
        "content_sha256": verdict.digest,
        "status": verdict.status,
        "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "rejected_rows": rejected,
        "failures": [failure.as_json() for failure in verdict.failures],
        "notes": verdict.notes,
        "data_docs": verdict.docs_pages or [],
    }
    (held / RESULT_FILE).write_text(json.dumps(summary, indent=2, default=str))
    if verdict.gx_results:
        gx_result = json.dumps(verdict.gx_results, indent=1, default=str)
        (held / "gx_result.json").write_text(gx_result)
