"""Landing file names chosen to break paths: each is held in quarantine under a safe id, nothing
else in the quarantine moves or disappears, and a rerun changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from mtlrec.names import UnsafeName, check_safe, safe_batch_id, shown
from mtlrec.validation import filing
from mtlrec.validation.gate import unknown_files
from tests.validation.conftest import failing_run

HOSTILE = {
    "dotdot": "...parquet",  # stem ".."
    "dot": "..parquet",  # stem "."
    "hidden": ".2026-01-01.parquet",
    "backslash": "a\\..\\b.parquet",
    "space": "2026-01-01 copy.parquet",
    "very_long": "2026-01-01_" + "x" * 230 + ".parquet",
    "non_utf8": os.fsdecode(b"\xff\xfe2026.parquet"),
}


def _tree(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_file_name_is_held_under_a_safe_id(small_workspace: Path, case: str) -> None:
    root, name = small_workspace, HOSTILE[case]
    items = root / "landing" / "items"
    good = next(items.glob("*.parquet"))
    (items / name).write_bytes(good.read_bytes())
    # An earlier run's records: one quarantined batch, one resolved. They must survive.
    older = root / "quarantine" / "items" / "2025-12-31"
    older.mkdir(parents=True)
    (older / "result.json").write_text(json.dumps({"content_sha256": "x", "validated_at": "t"}))
    resolved = root / "quarantine" / "resolved" / "users" / "2025-12-30" / "t0"
    resolved.mkdir(parents=True)
    (resolved / "result.json").write_text("{}")
    kept = _tree(root / "quarantine")

    message = failing_run(root)
    held_as = safe_batch_id(Path(name).stem)
    assert held_as.startswith("unsafe-")
    assert f"items/{held_as} -> " in message and "is not a batch id" in message
    held = root / "quarantine" / "items" / held_as
    assert (held / f"{held_as}.parquet").read_bytes() == good.read_bytes()
    record = json.loads((held / "result.json").read_text())
    assert record["kept_as"] == f"{held_as}.parquet" and record["status"] == "quarantined"
    after = _tree(root / "quarantine")
    assert {path: after[path] for path in kept} == kept  # every earlier record, byte for byte
    assert (items / name).read_bytes() == good.read_bytes()  # the landing file stays too

    failing_run(root)  # an idempotent rerun: the same record, untouched
    assert _tree(root / "quarantine") == after


def test_a_record_left_half_written_is_kept_aside_not_deleted(small_workspace: Path) -> None:
    root = small_workspace
    items = root / "landing" / "items"
    bad = items / "2026-01-01.parquet"
    bad.write_bytes(b"not parquet")
    partial = root / "quarantine" / "items" / "2026-01-01"
    partial.mkdir(parents=True)
    (partial / "rows.parquet").write_bytes(b"half of a crashed run's record")
    failing_run(root)
    aside = list((root / "quarantine" / "resolved" / "items" / "2026-01-01").rglob("rows.parquet"))
    assert [p.read_bytes() for p in aside] == [b"half of a crashed run's record"]
    assert json.loads((partial / "result.json").read_text())["status"] == "quarantined"


@pytest.mark.parametrize(
    "name", ["..", ".", "/etc/passwd", "a/b", "a\\b", "x" * 101, "", "v1\n", "caf\u00e9"]
)
def test_unsafe_names_never_become_paths(name: str) -> None:
    with pytest.raises(UnsafeName):
        check_safe(name)
    assert safe_batch_id(name).startswith("unsafe-") and "\n" not in shown(name)


def test_filing_refuses_an_unsafe_batch_id(tmp_path: Path) -> None:
    verdict = filing.Verdict("items", "..", tmp_path / "x.parquet", None, "quarantined", [], [])
    with pytest.raises(UnsafeName):
        filing.file_batch(verdict, None, tmp_path / "validated", tmp_path / "quarantine")
    assert not (tmp_path / "quarantine").exists()


def test_files_that_are_not_batches_are_reported(small_workspace: Path) -> None:
    landing = small_workspace / "landing"
    (landing / "items" / "notes.txt").write_text("remember the milk")
    (landing / "items" / "old").mkdir()
    (landing / "reviews").mkdir()
    assert unknown_files(landing) == ["items/notes.txt", "items/old", "reviews/"]
