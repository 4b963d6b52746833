"""The gate's behaviour over runs: a quiet pass, reruns, fixes, the ledger, the row policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mtlrec import cli
from mtlrec.config import ValidateConfig
from tests.conftest import tiny_raw_params
from tests.validation.conftest import (
    assert_held,
    failing_run,
    parquet_files,
    run_gate,
)


def _cli_validate(root: Path) -> int:
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_raw_params()))
    return cli.main(
        ["--params", str(root / "params.yaml"), "validate", "--landing", str(root / "landing")]
        + ["--out", str(root / "validated"), "--quarantine", str(root / "quarantine")]
        + ["--project", str(root)]
    )


def _impressions(root: Path, index: int) -> Path:
    return sorted((root / "landing" / "impressions").glob("*.parquet"))[index]


def _change(batch: Path, change) -> bytes:
    """Rewrite a landing batch through `change`; return its original bytes."""
    original = batch.read_bytes()
    change(pd.read_parquet(batch)).to_parquet(batch, index=False)
    return original


def _orphan_items(frame: pd.DataFrame, rows: int = 2) -> pd.DataFrame:
    frame.loc[frame.index[:rows], "item_id"] = 999_999_999
    return frame


def test_clean_shop_passes_quietly_with_one_line(
    workspace: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert _cli_validate(workspace) == 0
    out, err = capfd.readouterr()
    docs = workspace / "reports" / "data_docs" / "index.html"
    assert out == f"validated 10 batches; validation report: {docs}\n"
    assert err == ""  # no GX progress bars, logs or warnings
    assert docs.is_file()
    assert parquet_files(workspace / "validated") == parquet_files(workspace / "landing")
    assert not (workspace / "quarantine").exists()


def test_a_rerun_passes_again_and_keeps_the_docs_small(small_workspace: Path) -> None:
    root, config = small_workspace, ValidateConfig(keep_results=1)
    first = run_gate(root, config)
    ledger = json.loads((root / "ingest_ledger.json").read_text())
    second = run_gate(root, config)  # the same batches again: not duplicates
    assert not second.failed and len(second.outcomes) == len(first.outcomes) == 5
    assert json.loads((root / "ingest_ledger.json").read_text()) == ledger
    notes = {o.table: o.notes for o in second.outcomes if o.notes}
    assert set(notes) == {"items", "impressions"}  # their first batches have no reference
    assert notes["impressions"] == [
        "impressions_reference skipped: no earlier accepted impressions batch to compare"
    ]
    results = list((root / "gx" / "uncommitted" / "validations").rglob("*.json"))
    # one per batch and suite that ran (impressions_reference on 2 of 3 days): the first run's
    # results were pruned, and with them their Data Docs pages
    assert len(results) == 5 + 2
    pages = list((root / "reports" / "data_docs" / "validations").rglob("*.html"))
    assert len(pages) == 5 + 2
    folders = (root / "gx" / "uncommitted" / "validations").rglob("*")
    assert all(any(f.iterdir()) for f in folders if f.is_dir())  # no empty run folders left


def test_fixed_or_removed_batches_pass_on_rerun_and_their_record_is_kept(
    small_workspace: Path,
) -> None:
    root = small_workspace
    fixed, removed = _impressions(root, 1), _impressions(root, 2)
    good_bytes = _change(fixed, _orphan_items)
    bad_bytes = fixed.read_bytes()
    _change(removed, _orphan_items)
    message = failing_run(root)
    assert_held(root, message, "impressions", fixed.stem, "item_id=999999999")
    fixed.write_bytes(good_bytes)
    removed_bytes = removed.read_bytes()
    removed.unlink()
    assert not run_gate(root).failed
    assert parquet_files(root / "validated") == parquet_files(root / "landing")
    # the fixed batch left quarantine, its bad version is on record; the removed one stays held
    assert not (root / "quarantine" / "impressions" / fixed.stem).exists()
    (record,) = (root / "quarantine" / "resolved" / "impressions" / fixed.stem).iterdir()
    assert (record / fixed.name).read_bytes() == bad_bytes
    assert json.loads((record / "result.json").read_text())["status"] == "quarantined"
    held = root / "quarantine" / "impressions" / removed.stem / removed.name
    assert held.read_bytes() == removed_bytes


def test_content_accepted_in_an_earlier_run_is_a_duplicate(small_workspace: Path) -> None:
    root = small_workspace
    assert not run_gate(root).failed
    # the landing zone moves on: day 2 is gone, and a "new" day 4 holds its rows again,
    # reordered and written with another compression (different bytes, same content)
    day_two = _impressions(root, 1)
    rows = pd.read_parquet(day_two).iloc[::-1]
    day_two.unlink()
    rows.to_parquet(day_two.with_name("2026-01-04.parquet"), index=False, compression="zstd")
    message = failing_run(root)
    assert_held(
        root, message, "impressions", "2026-01-04", "unique_content: same rows as impressions/"
    )
    assert f"impressions/{day_two.stem} (accepted" in message


def test_split_policy_quarantines_only_the_bad_rows(small_workspace: Path) -> None:
    root = small_workspace
    orphans, contradiction = _impressions(root, 1), _impressions(root, 2)
    _change(orphans, _orphan_items)

    def buy_without_click(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[frame.index[frame["click"] == 0][0], "purchase"] = 1
        return frame

    _change(contradiction, buy_without_click)
    report = run_gate(root, ValidateConfig(row_policy="split"))
    assert not report.failed
    assert {(o.batch_id, o.rejected_rows) for o in report.split} == {
        (orphans.stem, 2),
        (contradiction.stem, 1),
    }
    assert "; 3 rows quarantined (impressions/" in report.summary()
    validated = pd.read_parquet(root / "validated" / "impressions" / orphans.name)
    assert len(validated) == 398 and (validated["item_id"] != 999_999_999).all()
    held = root / "quarantine" / "impressions" / orphans.stem
    bad = pd.read_parquet(held / "rows.parquet")
    assert bad["file_row"].tolist() == [0, 1] and (bad["item_id"] == 999_999_999).all()
    assert bad["reason"].str.contains("every item_id exists in an accepted items batch").all()
    result = json.loads((held / "result.json").read_text())
    assert (result["status"], result["rows"], result["rejected_rows"]) == ("split", 400, 2)
    # every row is in exactly one place
    assert len(validated) + len(bad) == len(pd.read_parquet(orphans))


def test_split_policy_still_fails_whole_batches_for_table_level_causes(
    small_workspace: Path,
) -> None:
    root = small_workspace
    no_column, mostly_bad = _impressions(root, 1), _impressions(root, 2)
    _change(no_column, lambda frame: frame.drop(columns=["position"]))
    _change(mostly_bad, lambda frame: _orphan_items(frame, rows=200))
    message = failing_run(root, ValidateConfig(row_policy="split"))
    assert_held(root, message, "impressions", no_column.stem, "missing ['position']")
    assert_held(root, message, "impressions", mostly_bad.stem, "row_policy_split: 200 of 400 rows")
    assert not (root / "quarantine" / "impressions" / no_column.stem / "rows.parquet").exists()


def test_an_expectation_added_to_a_suite_runs_with_no_code_change(small_workspace: Path) -> None:
    """What a data engineer does: add an expectation (no id needed) and a new suite file."""
    root = small_workspace
    suite_file = root / "gx" / "expectations" / "impressions.json"
    suite = json.loads(suite_file.read_text())
    suite["expectations"].append(
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "position", "max_value": 5},
            "notes": "lists show at most 5 items",
        }
    )
    suite_file.write_text(json.dumps(suite, indent=2))
    extra = {
        "name": "users_business_rules",
        "meta": {"table": "users"},
        "expectations": [
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "city_tier", "value_set": [1, 2]},
                "notes": "we only ship to tier 1 and 2 cities",
            }
        ],
    }
    (suite_file.parent / "users_business_rules.json").write_text(json.dumps(extra))
    message = failing_run(root)
    assert "expect_column_values_to_be_between(position) [lists show at most 5 items]" in message
    assert "expect_column_values_to_be_in_set(city_tier) [we only ship to tier 1" in message


def test_a_landing_zone_without_suites_is_an_error_not_a_pass(small_workspace: Path) -> None:
    shutil.rmtree(small_workspace / "gx")
    with pytest.raises(FileNotFoundError, match="no Great Expectations context"):
        run_gate(small_workspace)
