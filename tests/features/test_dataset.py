"""Training sets through the real Feast store: one row per entity row, point-in-time correct."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from mtlrec.features import dataset, featurize, store
from mtlrec.validation import gate
from tests.conftest import copy_project


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_shop: Path, params) -> Path:
    root = copy_project(tmp_path_factory.mktemp("project"))
    shutil.copytree(tiny_shop / "data", root / "data")
    data = root / "data"
    gate.run(params.validate_, data / "landing", data / "validated", data / "quarantine", root)
    featurize.run(params.features, data / "validated", data / "features")
    store.apply(root / "feature_repo", data / "feast" / "apply.json")
    dataset.run(
        params.dataset,
        params.features,
        data / "validated",
        root / "feature_repo",
        data / "training",
    )
    return root


def _all_rows(root: Path) -> pd.DataFrame:
    splits = [pd.read_parquet(root / "data" / "training" / f"{s}.parquet") for s in dataset.SPLITS]
    return pd.concat(splits, ignore_index=True)


def test_one_row_per_entity_row_and_labels_kept(built: Path) -> None:
    rows = _all_rows(built)
    validated = built / "data" / "validated"
    impressions = featurize.read_table(validated, "impressions")
    judgments = featurize.read_table(validated, "judgments")
    assert len(rows) == len(impressions) + len(judgments)
    assert rows["row_id"].is_unique
    shown = rows[rows["source"] == "impression"].set_index("row_id")
    truth = impressions.set_index("impression_id")
    assert (shown.loc[truth.index, "click"] == truth["click"]).all()
    assert rows.loc[rows["source"] == "judgment", "relevance"].notna().all()


def test_features_are_point_in_time_correct(built: Path) -> None:
    """Recompute each impression's 7-day user clicks from events strictly before its day."""
    rows = _all_rows(built)
    shown = rows[rows["source"] == "impression"]
    events = featurize.read_table(built / "data" / "validated", "impressions")
    sample = shown.sample(60, random_state=0)
    for _, row in sample.iterrows():
        day = row["event_timestamp"].floor("D")
        window = events[
            (events["user_id"] == row["user_id"])
            & (events["event_timestamp"] < day)
            & (events["event_timestamp"] >= day - pd.Timedelta(days=7))
        ]
        assert row["user_activity__clicks_7d"] == window["click"].sum()
        later = events[(events["user_id"] == row["user_id"]) & (events["event_timestamp"] >= day)]
        assert (
            row["user_activity__impressions_30d"] + len(later)
            <= (events["user_id"] == row["user_id"]).sum()
        )


def test_splits_are_by_time_and_queries_never_cross(built: Path) -> None:
    parts = {
        s: pd.read_parquet(built / "data" / "training" / f"{s}.parquet") for s in dataset.SPLITS
    }
    shown = {s: p[p["source"] == "impression"] for s, p in parts.items()}
    assert shown["train"]["event_timestamp"].max() < shown["valid"]["event_timestamp"].min()
    assert shown["valid"]["event_timestamp"].max() < shown["test"]["event_timestamp"].min()
    queries = {s: set(p.loc[p["source"] == "judgment", "query"]) for s, p in parts.items()}
    assert not queries["train"] & queries["test"] and not queries["valid"] & queries["test"]
    assert not queries["train"] & queries["valid"]


def test_schema_lists_service_features_with_kinds(built: Path) -> None:
    import json

    schema = json.loads((built / "data" / "training" / "schema.json").read_text())
    kinds = {field["name"]: field["kind"] for field in schema["features"]}
    assert kinds["item_profile__title"] == "text"
    assert kinds["user_profile__age_bucket"] == "categorical"
    assert kinds["item_popularity__ctr_7d"] == "numeric"
    columns = set(pd.read_parquet(built / "data" / "training" / "train.parquet").columns)
    assert set(kinds) <= columns
