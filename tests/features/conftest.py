"""One tiny project, validated, featurized and `feast apply`-ed once for all feature tests.

`feast apply` and the text encoder cost seconds each, so the session shares one project; the
tests that change the online store do so in their own module, in a fixed order.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlrec.config import FeaturesConfig, Params
from mtlrec.features import dataset, featurize, store
from mtlrec.validation import gate
from tests.conftest import copy_project

# The views and the join key each one hangs off.
VIEW_KEYS = {
    "user_profile": "user_id",
    "user_activity": "user_id",
    "item_profile": "item_id",
    "item_popularity": "item_id",
    "item_text": "item_id",
}
RICHEST_SERVICE = "mtl_v3"  # every view, the on-demand view and the array feature


@pytest.fixture(scope="session")
def feature_project(
    tmp_path_factory: pytest.TempPathFactory, tiny_shop: Path, params: Params
) -> Iterator[Path]:
    """A project copy with validated data, feature tables and a local (SQLite) registry."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(store.PROFILE_ENV, "local")
        root = copy_project(tmp_path_factory.mktemp("features"))
        shutil.copytree(tiny_shop / "data", root / "data")
        data = root / "data"
        gate.run(params.validate_, data / "landing", data / "validated", data / "quarantine", root)
        featurize.run(params.features, data / "validated", data / "features", data / "cache")
        store.apply(root / "feature_repo", data / "feast" / "apply.json")
        yield root


@pytest.fixture(scope="session")
def training_set(feature_project: Path, params: Params) -> Path:
    """data/training built through the local store with the richest service."""
    root = feature_project
    with pytest.MonkeyPatch.context() as env:  # whichever module asks first
        env.setenv(store.PROFILE_ENV, "local")
        dataset.run(
            params.dataset,
            FeaturesConfig(feature_service=RICHEST_SERVICE),
            root / "data" / "validated",
            root / "feature_repo",
            root / "data" / "training",
        )
    return root / "data" / "training"


def read_training(directory: Path) -> pd.DataFrame:
    splits = [pd.read_parquet(directory / f"{split}.parquet") for split in dataset.SPLITS]
    return pd.concat(splits, ignore_index=True)


def offline_latest(features_dir: Path, view: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Each entity's latest row of a view's offline table at or before `as_of`."""
    table = pd.read_parquet(features_dir / f"{view}.parquet")
    table = table[table["event_timestamp"] <= as_of]
    latest = table.sort_values("event_timestamp").groupby(VIEW_KEYS[view]).tail(1)
    return latest.set_index(VIEW_KEYS[view]).drop(columns="event_timestamp").sort_index()


def online_values(repo: Path, view: str, keys: list[int]) -> pd.DataFrame:
    """What the online store serves for every feature of `view`, one row per key."""
    feature_store = store.open_store(repo)
    fields = [field.name for field in feature_store.get_feature_view(view).features]
    key = VIEW_KEYS[view]
    served = feature_store.get_online_features(
        features=[f"{view}:{name}" for name in fields],
        entity_rows=[{key: int(value)} for value in keys],
    ).to_df()
    return served.set_index(key)[fields].sort_index()


def assert_same_values(served: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Each served column against the expected one: arrays elementwise, numbers to float32
    precision, the rest exactly."""
    assert list(served.index) == list(expected.index)
    for column in served.columns:
        got, want = served[column], expected[column]
        if isinstance(want.iloc[0], np.ndarray | list):
            np.testing.assert_allclose(np.stack(got), np.stack(want), rtol=1e-6, err_msg=column)
        elif pd.api.types.is_numeric_dtype(want):
            got = pd.to_numeric(got).to_numpy(dtype=float)
            np.testing.assert_allclose(got, want.to_numpy(dtype=float), rtol=1e-6, err_msg=column)
        else:
            assert got.tolist() == want.tolist(), column


def online_snapshot(repo: Path, features_dir: Path) -> dict[str, pd.DataFrame]:
    """Every online value of every entity in the offline tables, by view."""
    return {view: online_values(repo, view, entity_keys(features_dir, view)) for view in VIEW_KEYS}


def entity_keys(features_dir: Path, view: str) -> list[int]:
    """Every entity of a view's offline table, sorted."""
    key = VIEW_KEYS[view]
    return sorted(pd.read_parquet(features_dir / f"{view}.parquet", columns=[key])[key].unique())
