"""Training sets through the real Feast store: one row per entity row, point-in-time correct."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlrec.config import DatasetConfig
from mtlrec.features import dataset, featurize
from mtlrec.features.dataset import entity_rows
from mtlrec.features.store import open_store
from tests.features.conftest import RICHEST_SERVICE, read_training

# View -> (join key, TTL of its rows), as in feature_repo/features/*.py.
AS_OF_VIEWS = {
    "user_activity": ("user_id", pd.Timedelta(days=2)),
    "item_popularity": ("item_id", pd.Timedelta(days=2)),
    "item_profile": ("item_id", pd.Timedelta(days=3650)),
}


def test_one_row_per_entity_row_and_labels_kept(feature_project: Path, training_set: Path) -> None:
    rows = read_training(training_set)
    validated = feature_project / "data" / "validated"
    impressions = featurize.read_table(validated, "impressions")
    judgments = featurize.read_table(validated, "judgments")
    assert len(rows) == len(impressions) + len(judgments)
    assert rows["row_id"].is_unique
    shown = rows[rows["source"] == "impression"].set_index("row_id")
    truth = impressions.set_index("impression_id")
    assert (shown.loc[truth.index, "click"] == truth["click"]).all()
    assert rows.loc[rows["source"] == "judgment", "relevance"].notna().all()


def test_features_are_point_in_time_correct(feature_project: Path, training_set: Path) -> None:
    """Recompute each impression's 7-day user clicks from events strictly before its day."""
    rows = read_training(training_set)
    shown = rows[rows["source"] == "impression"]
    events = featurize.read_table(feature_project / "data" / "validated", "impressions")
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


@pytest.mark.parametrize("view", sorted(AS_OF_VIEWS))
def test_each_row_sees_the_latest_value_at_or_before_its_time(
    feature_project: Path, training_set: Path, view: str
) -> None:
    """An as-of join done by hand: a row at time t gets the offline row with the greatest
    timestamp <= t (null when none is within the TTL), never one stamped after t."""
    key, ttl = AS_OF_VIEWS[view]
    rows = read_training(training_set).sample(300, random_state=1)
    table = pd.read_parquet(feature_project / "data" / "features" / f"{view}.parquet")
    columns = [c for c in rows.columns if c.startswith(f"{view}__")]
    for _, row in rows.iterrows():
        t = row["event_timestamp"]
        candidates = table[(table[key] == row[key]) & (table["event_timestamp"] <= t)]
        candidates = candidates[candidates["event_timestamp"] >= t - ttl]
        got = row[columns]
        if candidates.empty:
            assert got.isna().all(), (view, row["row_id"])
            continue
        latest = candidates.sort_values("event_timestamp").iloc[-1]
        want = latest[[c.removeprefix(f"{view}__") for c in columns]]
        for name, value in zip(columns, want, strict=True):
            if isinstance(value, float) and np.isnan(value):
                assert pd.isna(got[name])
            elif isinstance(value, float | np.floating):
                assert got[name] == pytest.approx(value, rel=1e-6), (name, row["row_id"])
            else:
                assert got[name] == value, (name, row["row_id"])


def test_a_value_stamped_after_the_row_is_never_seen(feature_project: Path) -> None:
    """Ask for one user's features one microsecond before and at a snapshot's midnight: the
    earlier row must not see that snapshot, the later one must."""
    table = pd.read_parquet(feature_project / "data" / "features" / "user_activity.parquet")
    table = table.sort_values(["user_id", "event_timestamp"], ignore_index=True)
    previous = table.groupby("user_id")["impressions_7d"].shift()
    changed = table.index[previous.notna() & (previous != table["impressions_7d"])]
    snapshot, before = table.loc[changed[0]], table.loc[changed[0] - 1]  # the values differ
    at = snapshot["event_timestamp"]
    entities = pd.DataFrame(
        {
            "user_id": [snapshot["user_id"]] * 2,
            "event_timestamp": [at - pd.Timedelta(microseconds=1), at],
        }
    )
    got = (
        open_store(feature_project / "feature_repo")
        .get_historical_features(entity_df=entities, features=["user_activity:impressions_7d"])
        .to_df()
        .sort_values("event_timestamp")
    )
    assert got["impressions_7d"].tolist() == [before["impressions_7d"], snapshot["impressions_7d"]]


def test_splits_are_by_time_and_queries_never_cross(training_set: Path) -> None:
    parts = {s: pd.read_parquet(training_set / f"{s}.parquet") for s in dataset.SPLITS}
    shown = {s: p[p["source"] == "impression"] for s, p in parts.items()}
    assert shown["train"]["event_timestamp"].max() < shown["valid"]["event_timestamp"].min()
    assert shown["valid"]["event_timestamp"].max() < shown["test"]["event_timestamp"].min()
    queries = {s: set(p.loc[p["source"] == "judgment", "query"]) for s, p in parts.items()}
    assert not queries["train"] & queries["test"] and not queries["valid"] & queries["test"]
    assert not queries["train"] & queries["valid"]


def test_each_split_is_in_time_order(training_set: Path) -> None:
    """Rows by stamp, ties by id: each split taken from the unsorted frame in that order."""
    for name in dataset.SPLITS:
        part = pd.read_parquet(
            training_set / f"{name}.parquet", columns=["event_timestamp", "row_id"]
        )
        in_order = part.sort_values(["event_timestamp", "row_id"], ignore_index=True)
        assert len(part) > 0
        pd.testing.assert_frame_equal(part, in_order)


def test_schema_lists_service_features_with_kinds(training_set: Path) -> None:
    schema = json.loads((training_set / "schema.json").read_text())
    assert schema["feature_service"] == RICHEST_SERVICE
    kinds = {field["name"]: field["kind"] for field in schema["features"]}
    assert kinds["item_profile__title"] == "text"
    assert kinds["user_profile__age_bucket"] == "categorical"
    assert kinds["item_popularity__ctr_7d"] == "numeric"
    assert kinds["item_text__title_embedding"] == "array"
    # On-demand fields take their view's kind tag (Feast rejects tags on their fields).
    assert kinds["query_item_match__title_jaccard"] == "numeric"
    assert kinds["query_item_match__brand_in_query"] == "numeric"
    columns = set(pd.read_parquet(training_set / "train.parquet").columns)
    assert set(kinds) <= columns


def test_request_time_and_array_features_are_computed(training_set: Path) -> None:
    rows = read_training(training_set)
    feed = rows[rows["query"].isna()]
    match = [c for c in rows.columns if c.startswith("query_item_match__")]
    assert len(match) == 4 and (feed[match] == 0).all().all()
    search = rows[rows["query"].notna()]
    assert (search["query_item_match__title_jaccard"] > 0).mean() > 0.3
    exact = search[search["query"] == search["item_profile__category"]]
    assert len(exact) > 0 and (exact["query_item_match__category_in_query"] == 1).all()
    embeddings = np.stack(rows["item_text__title_embedding"])  # (N, 384)
    assert embeddings.shape == (len(rows), 384)


def test_the_service_named_in_params_decides_the_columns(feature_project: Path) -> None:
    """v1 has neither the on-demand view nor the embedding; v3 has both."""
    store = open_store(feature_project / "feature_repo")
    fields = {
        name: {f["name"] for f in dataset.service_fields(store.get_feature_service(name))}
        for name in ("mtl_v1", "mtl_v2", "mtl_v3")
    }
    assert fields["mtl_v1"] < fields["mtl_v2"] < fields["mtl_v3"]
    assert "query_item_match__title_jaccard" in fields["mtl_v2"] - fields["mtl_v1"]
    assert fields["mtl_v3"] - fields["mtl_v2"] == {"item_text__title_embedding"}


def test_entity_rows_carry_the_request_time_query() -> None:
    impressions = pd.DataFrame(
        {
            "impression_id": ["a", "b"],
            "event_timestamp": pd.to_datetime(["2026-01-01 10:00", "2026-01-01 11:00"], utc=True),
            "user_id": [1, 2],
            "item_id": [3, 4],
            "scenario": ["search", "feed"],
            "query": ["desk lamp", None],
            "position": [1, 2],
            "click": [1, 0],
            "purchase": [0, 0],
        }
    )
    judgments = pd.DataFrame(
        {
            "query": ["sofa"],
            "item_id": [5],
            "relevance": [2.0],
            "judged_at": pd.to_datetime(["2026-01-02"], utc=True),
        }
    )
    rows = entity_rows(impressions, judgments)
    assert rows["query"].tolist() == ["desk lamp", None, "sofa"]
    assert rows["user_id"].tolist() == [1, 2, dataset.NO_USER]


def test_query_split_follows_the_hash_and_gives_few_queries_every_split() -> None:
    config = DatasetConfig(judgment_valid_share=0.15, judgment_test_share=0.15)
    many = [f"query {i}" for i in range(2000)]
    split = dataset.query_splits(pd.Series(many), config)
    by_hash = {
        q: "test" if h < 0.15 else "valid" if h < 0.3 else "train"
        for q, h in ((q, dataset._unit_hash(q)) for q in many)
    }
    assert split == by_hash  # nothing moves when the hash fills every split
    for n in range(3, 16):
        few = dataset.query_splits(pd.Series([f"q{i}" for i in range(n)] * 2), config)
        assert set(few.values()) == {"train", "valid", "test"}, n
    assert set(dataset.query_splits(pd.Series(["a", "b"]), config).values()) <= {
        "train",
        "test",
        "valid",
    }
    assert "train" in dataset.query_splits(pd.Series(["a", "b"]), config).values()


def test_time_order_is_sort_values_by_stamp_then_id() -> None:
    rng = np.random.default_rng(5)
    n = 5_000
    stamps = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 400, n), unit="s"
    )  # ~12 rows a stamp: many ties
    ids = [
        f"{prefix}{rng.integers(0, 10**6)}-{i}"
        for i, prefix in enumerate(rng.choice(["imp-", "j:q:"], n))
    ]
    table = pd.DataFrame({"event_timestamp": stamps.astype("datetime64[us, UTC]"), "row_id": ids})
    expected = table.sort_values(["event_timestamp", "row_id"]).index.to_numpy()
    np.testing.assert_array_equal(dataset.time_order(table), expected)
    untied = table.drop_duplicates("event_timestamp")
    np.testing.assert_array_equal(
        untied.index.to_numpy()[dataset.time_order(untied)],
        untied.sort_values("event_timestamp").index.to_numpy(),
    )
