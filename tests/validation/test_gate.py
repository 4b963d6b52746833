"""The validation gate on the tiny shop: passes quietly, quarantines bad batches, loses nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mtlrec.config import ValidateConfig
from mtlrec.validation import gate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def workspace(tmp_path: Path, tiny_shop: Path) -> Path:
    """A project folder with the repo's GX suites and a private copy of the tiny landing zone."""
    shutil.copytree(REPO / "gx", tmp_path / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    shutil.copytree(tiny_shop / "data" / "landing", tmp_path / "landing")
    return tmp_path


def _run(root: Path) -> gate.ValidationReport:
    return gate.run(
        ValidateConfig(), root / "landing", root / "validated", root / "quarantine", root
    )


def _batches(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*.parquet")}


def test_clean_shop_passes_and_every_batch_lands_validated(workspace: Path) -> None:
    report = _run(workspace)
    assert report.outcomes and not report.failed
    assert _batches(workspace / "validated") == _batches(workspace / "landing")
    assert not (workspace / "quarantine").exists()
    assert Path(report.data_docs).is_file()


def _break_impressions(root: Path, change) -> Path:
    batch = sorted((root / "landing" / "impressions").glob("*.parquet"))[1]
    frame = pd.read_parquet(batch)
    change(frame).to_parquet(batch, index=False)
    return batch


def _orphan_item(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.index[:2], "item_id"] = 999_999_999
    return frame


def test_orphan_item_is_quarantined_with_named_cause(workspace: Path) -> None:
    batch = _break_impressions(workspace, _orphan_item)
    with pytest.raises(gate.ValidationFailed) as failure:
        _run(workspace)
    message = str(failure.value)
    assert f"impressions/{batch.stem}" in message
    assert "expect_column_values_to_be_in_set(item_id)" in message
    assert "item_id=999999999" in message
    held = workspace / "quarantine" / "impressions" / batch.stem
    assert (held / batch.name).read_bytes() == batch.read_bytes()
    result = json.loads((held / "result.json").read_text())
    assert result["failures"][0]["column"] == "item_id"
    # exactly one place: not validated, and every other batch still validated
    assert not (workspace / "validated" / "impressions" / batch.name).exists()
    landed = _batches(workspace / "landing") - {f"impressions/{batch.name}"}
    assert _batches(workspace / "validated") == landed


def test_missing_column_and_corrupt_file_are_named(workspace: Path) -> None:
    _break_impressions(workspace, lambda frame: frame.drop(columns=["position"]))
    corrupt = sorted((workspace / "landing" / "users").glob("*.parquet"))[0]
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    with pytest.raises(gate.ValidationFailed) as failure:
        _run(workspace)
    message = str(failure.value)
    assert "expect_table_columns_to_match_set" in message
    assert f"readable_parquet: cannot read {corrupt.name}" in message


def test_fixed_batch_leaves_quarantine_on_rerun(workspace: Path) -> None:
    original = sorted((workspace / "landing" / "impressions").glob("*.parquet"))[1]
    kept = original.read_bytes()
    _break_impressions(workspace, _orphan_item)
    with pytest.raises(gate.ValidationFailed):
        _run(workspace)
    original.write_bytes(kept)
    report = _run(workspace)
    assert not report.failed
    assert not (workspace / "quarantine" / "impressions" / original.stem).exists()
    assert _batches(workspace / "validated") == _batches(workspace / "landing")
