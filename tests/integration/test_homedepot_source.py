"""`source.kind: homedepot` makes `dvc repro` train and evaluate on an ingested public-format
file: relevance only, judgements split by query, RMSE on the source's own 1..3 scale."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mtlrec.data import simulate
from tests.conftest import copy_project
from tests.integration.test_dvc_pipeline import _dvc

pytestmark = pytest.mark.slow


def _write_homedepot_file(path: Path, tiny_shop: Path) -> None:
    """A file in Home Depot's schema and scale, built from the tiny shop's rated pairs."""
    judged = pd.read_parquet(next((tiny_shop / "data" / "landing" / "judgments").glob("*")))
    for extra in sorted((tiny_shop / "data" / "landing" / "judgments").glob("*"))[1:]:
        judged = pd.concat([judged, pd.read_parquet(extra)], ignore_index=True)
    items = pd.read_parquet(next((tiny_shop / "data" / "landing" / "items").glob("*")))
    rows = judged.merge(items[["item_id", "title"]], on="item_id")
    frame = pd.DataFrame(
        {
            "id": range(1, len(rows) + 1),
            "product_uid": rows["item_id"],
            "product_title": rows["title"],
            "search_term": rows["query"],
            "relevance": (1 + rows["relevance"] * 2 / 3).round(2),  # 0..3 -> 1..3
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, encoding="latin-1", errors="replace")


def test_repro_on_homedepot_source_trains_relevance_only(tmp_path: Path, tiny_shop: Path) -> None:
    assert simulate  # the shop above is the simulator's; the pipeline below never simulates
    root = copy_project(tmp_path / "project", source={"kind": "homedepot"}, train={"epochs": 2})
    _write_homedepot_file(root / "sources" / "homedepot" / "train.csv", tiny_shop)
    _dvc(root, "repro")
    assert not list((root / "data" / "landing").glob("impressions/*.parquet"))
    report = json.loads((root / "metrics" / "challenger.json").read_text())
    assert set(report) == {"relevance"}
    assert 0.0 <= report["relevance"]["ndcg@10"] <= 1.0
    assert 0.0 < report["relevance"]["rmse"] < 2.0
    splits = {
        name: pd.read_parquet(root / "data" / "training" / f"{name}.parquet")
        for name in ("train", "valid", "test")
    }
    assert all((frame["source"] == "judgment").all() for frame in splits.values())
    queries = [set(frame["query"]) for frame in splits.values()]
    assert not (queries[0] & queries[2]) and not (queries[1] & queries[2])
    assert splits["test"]["relevance"].between(1, 3).all()
    gate = json.loads((root / "metrics" / "gate.json").read_text())
    assert gate["promoted"] and gate["version"] == "v1"
