"""The Home Depot adapter on a small file written in that dataset's schema and encoding."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from mtlrec.config import ValidateConfig
from mtlrec.data import ingest

REPO = Path(__file__).resolve().parents[2]
ROWS = [
    (2, 100001, "Simpson Strong-Tie 12-Gauge Angle", "angle bracket", 3.0),
    (3, 100001, "Simpson Strong-Tie 12-Gauge Angle", "l bracket", 2.5),
    (9, 100002, "BEHR Premium Textured DeckOver 1-gal. #SC-141 Tugboat", "deck over", 3.0),
    (
        16,
        100005,
        "Delta Vero 1-Handle Shower Only Faucet Trim Kit in Caf\u00e9",
        "rain shower head",
        2.33,
    ),
    (
        17,
        100005,
        "Delta Vero 1-Handle Shower Only Faucet Trim Kit in Caf\u00e9",
        "shower only faucet",
        2.67,
    ),
    (18, 100006, "Whirlpool 1.9 cu. ft. Over the Range Microwave", "microwave over stove", 3.0),
    (20, 100006, "Whirlpool 1.9 cu. ft. Over the Range Microwave", "microwave over stove", 2.0),
]


@pytest.fixture()
def homedepot_csv(tmp_path: Path) -> Path:
    frame = pd.DataFrame(ROWS, columns=list(ingest.HOMEDEPOT_COLUMNS))
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False, encoding="latin-1")
    return path


def test_maps_items_and_judgements_into_the_raw_contract(
    homedepot_csv: Path, tmp_path: Path
) -> None:
    summary = ingest.run(homedepot_csv, "homedepot", tmp_path / "landing")
    items = pd.read_parquet(tmp_path / "landing" / "items" / f"{summary.batch}.parquet")
    judged = pd.read_parquet(tmp_path / "landing" / "judgments" / f"{summary.batch}.parquet")
    assert list(items.columns) == ["item_id", "title", "category", "brand", "price", "created_ts"]
    assert list(judged.columns) == ["query", "item_id", "relevance", "judged_at"]
    assert items["item_id"].tolist() == [100001, 100002, 100005, 100006]
    assert "Caf\u00e9" in items.loc[items["item_id"] == 100005, "title"].item()  # latin-1 decoded
    assert (items["category"] == "unknown").all() and items["price"].isna().all()
    # duplicate (query, item) grades are averaged into one judgement
    twice = judged[(judged["query"] == "microwave over stove")]
    assert len(twice) == 1 and twice["relevance"].item() == pytest.approx(2.5)
    assert not judged.duplicated(["query", "item_id"]).any()
    assert judged["relevance"].between(1, 3).all()
    assert (summary.items, summary.judgments, summary.queries) == (4, 6, 6)


def test_ingested_batches_pass_the_validation_gate(homedepot_csv: Path, tmp_path: Path) -> None:
    from mtlrec.validation import gate

    ingest.run(homedepot_csv, "homedepot", tmp_path / "landing")
    shutil.copytree(REPO / "gx", tmp_path / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    report = gate.run(
        ValidateConfig(),
        tmp_path / "landing",
        tmp_path / "validated",
        tmp_path / "quarantine",
        tmp_path,
    )
    assert not report.failed
    assert {outcome.table for outcome in report.outcomes} == {"items", "judgments"}


def test_wrong_file_is_rejected_with_the_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    pd.DataFrame({"id": [1], "search_term": ["x"]}).to_csv(path, index=False)
    with pytest.raises(ingest.IngestError, match="missing columns.*product_uid"):
        ingest.run(path, "homedepot", tmp_path / "landing")
    with pytest.raises(ingest.IngestError, match="unknown format"):
        ingest.run(path, "amazon", tmp_path / "landing")
