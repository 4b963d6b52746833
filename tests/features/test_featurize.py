"""Offline features: the snapshot for day D counts only events strictly before D; titles are
encoded once into the item_text table and the text cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mtlrec.config import TextConfig
from mtlrec.features.featurize import price_index, rolling_activity, snapshot_days
from mtlrec.model.text_cache import MINILM_DIM, TextEmbeddingCache, encoder_id


def _impressions(rows: list[tuple[str, int, int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["ts", "user_id", "click", "purchase"])
    frame["event_timestamp"] = pd.to_datetime(frame.pop("ts"), utc=True)
    frame["item_id"] = 1
    return frame


def test_snapshot_uses_only_earlier_days() -> None:
    impressions = _impressions(
        [
            ("2026-01-01 10:00", 7, 1, 0),
            ("2026-01-02 09:00", 7, 1, 1),
            ("2026-01-02 23:59", 7, 0, 0),
            ("2026-01-04 00:00", 7, 1, 0),
        ]
    )
    days = snapshot_days(impressions)
    assert str(days[0].date()) == "2026-01-01" and str(days[-1].date()) == "2026-01-05"
    frame = rolling_activity(impressions, "user_id", days, (1, 7)).set_index("event_timestamp")
    at = frame.loc[pd.Timestamp("2026-01-01", tz="UTC")]
    assert at["impressions_7d"] == 0  # nothing happened before the first day
    at = frame.loc[pd.Timestamp("2026-01-03", tz="UTC")]
    assert (at["impressions_1d"], at["clicks_1d"], at["purchases_1d"]) == (2, 1, 1)
    assert (at["impressions_7d"], at["clicks_7d"]) == (3, 2)
    assert at["ctr_7d"] == pytest_approx(2 / 3)
    at = frame.loc[pd.Timestamp("2026-01-04", tz="UTC")]
    # the midnight event of Jan 4 is not in the Jan 4 snapshot, and Jan 3 had nothing
    assert (at["impressions_1d"], at["impressions_7d"]) == (0, 3)
    at = frame.loc[pd.Timestamp("2026-01-05", tz="UTC")]
    assert (at["impressions_1d"], at["clicks_7d"]) == (1, 3)


def test_windows_are_independent_per_entity() -> None:
    impressions = _impressions([("2026-01-01 10:00", 1, 1, 0), ("2026-01-01 11:00", 2, 0, 0)])
    frame = rolling_activity(impressions, "user_id", snapshot_days(impressions), (1,))
    latest = frame[frame["event_timestamp"] == frame["event_timestamp"].max()].set_index("user_id")
    assert latest.loc[1, "clicks_1d"] == 1 and latest.loc[2, "clicks_1d"] == 0
    assert latest.loc[2, "impressions_1d"] == 1


def pytest_approx(value: float):
    import pytest

    return pytest.approx(value, rel=1e-6)


def test_item_text_holds_one_unit_norm_title_embedding_per_item(feature_project: Path) -> None:
    features = feature_project / "data" / "features"
    text = pd.read_parquet(features / "item_text.parquet")
    profile = pd.read_parquet(features / "item_profile.parquet")
    assert text["item_id"].tolist() == profile["item_id"].tolist()
    assert (text["event_timestamp"] == profile["event_timestamp"]).all()
    vectors = np.stack(text["title_embedding"])  # (items, 384): all-MiniLM-L6-v2
    assert vectors.shape == (len(profile), MINILM_DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert len(np.unique(vectors, axis=0)) == profile["title"].nunique()


def test_title_embeddings_land_in_the_cache_training_reads(feature_project: Path) -> None:
    """Training encodes item titles with the same encoder: featurize has done it already."""
    titles = pd.read_parquet(feature_project / "data" / "features" / "item_profile.parquet")
    cache = TextEmbeddingCache(feature_project / "data" / "cache", encoder_id(TextConfig()))
    keys = [cache.key(title.strip()) for title in titles["title"]]
    assert set(cache.lookup(keys)) == set(keys)


def test_price_index_compares_a_price_with_its_category_median() -> None:
    items = pd.DataFrame(
        {
            "category": ["sofa", "sofa", "sofa", "lamp", "lamp", "unknown", None, "lamp"],
            "price": [300.0, 600.0, 1200.0, 30.0, 60.0, 50.0, 50.0, None],
        }
    )
    index = price_index(items)
    np.testing.assert_allclose(index[:5], np.log([0.5, 1.0, 2.0, 30 / 45, 60 / 45]))
    assert index[5:].isna().all()  # unknown category, no category, no price
