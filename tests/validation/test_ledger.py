"""The ingest ledger: content identity, duplicates, reruns and batches that leave landing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mtlrec.validation.ledger import Ledger, content_digest

FRAME = pd.DataFrame({"id": ["a", "b", "c"], "value": [1, 2, 3]})


def test_digest_ignores_row_order_and_encoding_but_not_content() -> None:
    digest = content_digest(FRAME, b"")
    assert content_digest(FRAME.iloc[::-1].reset_index(drop=True), b"other bytes") == digest
    assert content_digest(FRAME.assign(value=[1, 2, 4]), b"") != digest
    assert content_digest(FRAME.astype({"value": "float64"}), b"") != digest  # dtypes count


def test_unhashable_cells_fall_back_to_the_file_bytes() -> None:
    frame = pd.DataFrame({"tags": [["a"], ["b"]]})
    assert content_digest(frame, b"one") != content_digest(frame, b"two")


def test_same_content_under_another_batch_is_a_duplicate(tmp_path: Path) -> None:
    ledger = Ledger.load(tmp_path / "ledger.json", landed=set())
    ledger.accept("impressions/2026-01-01", "abc", rows=3)
    assert ledger.duplicate_of("impressions/2026-01-01", "abc") is None  # itself: a rerun
    assert ledger.duplicate_of("impressions/2026-01-02", "abc").startswith(
        "impressions/2026-01-01 (accepted "
    )


def test_persisted_entries_outlive_the_run_unless_their_batch_lands_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.json"
    first = Ledger.load(path, landed=set())
    first.accept("impressions/2026-01-01", "abc", rows=3)
    first.accept("impressions/2026-01-02", "def", rows=3)
    first.save()
    # day 1 left the landing zone: still on record; day 2 landed again: decided afresh
    second = Ledger.load(path, landed={"impressions/2026-01-02"})
    assert second.duplicate_of("impressions/2026-01-09", "abc")
    assert second.duplicate_of("impressions/2026-01-09", "def") is None
    accepted_at = first.entries["impressions/2026-01-02"]["accepted_at"]
    second.accept("impressions/2026-01-02", "def", rows=3)  # a rerun keeps the first time
    assert second.entries["impressions/2026-01-02"]["accepted_at"] == accepted_at
