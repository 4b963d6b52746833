"""Training/serving parity on both profiles: rows of the test split scored over real HTTP by
`mtlrec serve` and offline by the evaluate stage's code (`predict` on Feast's historical features
as of the latest snapshot, what the online store holds) agree to 1e-5 for every task. And the
service's online reader equals Feast's `get_online_features`, value for value."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
import redis

from mtlrec.config import load_params
from mtlrec.features import store
from mtlrec.model.predict import predict
from mtlrec.serving.features import OnlineFeatures
from tests.conftest import tool_env, unavailable
from tests.serving.conftest import Server, serving

pytestmark = pytest.mark.slow
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TASKS = ("p_ctr", "p_cvr", "p_ctcvr", "relevance")


@pytest.fixture(scope="module")
def production(pipeline_run: Path) -> Iterator[dict[str, str]]:
    """The workspace's feature repo applied to its own PostgreSQL registry and Redis project,
    materialized in full; the environment that selects it. Removed afterwards."""
    try:
        psycopg.connect(POSTGRES_ADMIN, connect_timeout=3).close()
        redis.Redis("127.0.0.1", 6379, socket_connect_timeout=3).ping()
    except (psycopg.Error, redis.RedisError) as error:
        unavailable(f"PostgreSQL/Redis at 127.0.0.1 unreachable: {error}")
    name = f"mtlrec_parity_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    env = {
        store.PROFILE_ENV: "production",
        "MTLREC_FEAST_PROJECT": name,
        "MTLREC_FEAST_REGISTRY_URL": f"postgresql+psycopg://postgres@127.0.0.1/{name}",
        "MTLREC_FEAST_REDIS": "127.0.0.1:6379",
    }
    repo = pipeline_run / "feature_repo"
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            store.apply(repo)
            store.materialize(
                repo, end=pd.Timestamp.now(tz="UTC"), start=pd.Timestamp("2000-01-01", tz="UTC")
            )
            yield env
            store.open_store(repo).teardown()
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _requests(workspace: Path, n_groups: int = 12) -> list[pd.DataFrame]:
    """Groups of test-split impressions shown together: (user, scenario, query) and items."""
    test = pd.read_parquet(workspace / "data" / "training" / "test.parquet")
    shown = test[test["source"] == "impression"].drop_duplicates(["user_id", "item_id", "query"])
    keys = ["user_id", "scenario", "query"]
    groups = [g for _, g in shown.groupby(keys, dropna=False, sort=True) if len(g) >= 3]
    searches = [g for g in groups if g["scenario"].iloc[0] == "search"][: n_groups // 2]
    feeds = [g for g in groups if g["scenario"].iloc[0] == "feed"][: n_groups // 2]
    assert len(searches) >= 3 and len(feeds) >= 3
    return [g.drop_duplicates("item_id") for g in [*searches, *feeds]]


def _latest_snapshot(workspace: Path) -> pd.Timestamp:
    """A moment after every feature row: what the online store holds is the latest of each."""
    stamps = [
        pd.read_parquet(path, columns=["event_timestamp"])["event_timestamp"].max()
        for path in (workspace / "data" / "features").glob("*.parquet")
    ]
    return max(stamps) + pd.Timedelta(seconds=1)


def _offline(workspace: Path, group: pd.DataFrame, position: int) -> pd.DataFrame:
    """The evaluate stage's scoring of these rows with the offline store's latest values."""
    feature_store = store.open_store(workspace / "feature_repo")
    model = workspace / "models" / "registry" / "v1"
    service = pd.read_json(model / "schema.json", typ="series")["feature_service"]
    entities = group[["user_id", "item_id", "scenario", "query"]].assign(
        position=position, event_timestamp=_latest_snapshot(workspace)
    )
    frame = feature_store.get_historical_features(
        entity_df=entities.reset_index(drop=True),
        features=feature_store.get_feature_service(service),
        full_feature_names=True,
    ).to_df()
    scored = predict(model, frame, workspace / "data" / "cache")
    return scored.assign(item_id=frame["item_id"].to_numpy()).set_index("item_id")


def _assert_parity(server: Server, workspace: Path) -> int:
    position = load_params(workspace / "params.yaml").serve.position
    compared = 0
    for group in _requests(workspace):
        first = group.iloc[0]
        body = {
            "user_id": int(first["user_id"]),
            "scenario": first["scenario"],
            "candidates": [int(i) for i in group["item_id"]],
            "k": len(group),
        }
        if first["scenario"] == "search":
            body["query"] = first["query"]
        answer = server.post(body).json()
        online = pd.DataFrame(answer["items"]).set_index("item_id").sort_index()
        offline = _offline(workspace, group, position).sort_index()
        assert list(online.index) == list(offline.index)
        for task in TASKS:
            np.testing.assert_allclose(online[task], offline[task], atol=1e-5, rtol=0, err_msg=task)
        compared += len(group)
    return compared


def test_serving_scores_the_test_split_as_evaluation_does_on_sqlite(pipeline_run: Path) -> None:
    with serving(pipeline_run) as server:
        assert _assert_parity(server, pipeline_run) >= 20


def test_serving_scores_the_test_split_as_evaluation_does_on_redis(
    pipeline_run: Path, production: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in production.items():
        monkeypatch.setenv(key, value)
    with serving(pipeline_run, env={**tool_env(), **production}) as server:
        assert server.get("/readyz").json()["online_store"] == "reachable"
        assert _assert_parity(server, pipeline_run) >= 20


@pytest.mark.parametrize("profile", ["local", "production"])
def test_the_online_reader_equals_get_online_features(
    pipeline_run: Path, production: dict[str, str], monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    if profile == "production":
        for key, value in production.items():
            monkeypatch.setenv(key, value)
    else:
        monkeypatch.setenv(store.PROFILE_ENV, "local")
    feature_store = store.open_store(pipeline_run / "feature_repo")
    features = pipeline_run / "data" / "features"
    users = pd.read_parquet(features / "user_profile.parquet")["user_id"].tolist()[:3]
    items = pd.read_parquet(features / "item_profile.parquet")["item_id"].tolist()[:40]
    user_ids = [users[i % 3] for i in range(len(items))] + [999_999_999, users[0]]
    item_ids = [*items, items[0], 424_242]  # an unknown user, an unknown item
    queries = ["bose speaker"] * 20 + [None] * (len(item_ids) - 20)
    for service in ("mtl_v2", "mtl_v3"):
        reader = OnlineFeatures(feature_store, service)
        rows = reader.read({"user_id": user_ids, "item_id": item_ids}, queries)
        expected = feature_store.get_online_features(
            features=feature_store.get_feature_service(service),
            entity_rows={"user_id": user_ids, "item_id": item_ids, "query": queries},
            full_feature_names=True,
        ).to_df()
        for column in reader.columns:
            got, want = rows.frame[column].tolist(), expected[column].tolist()
            assert [_plain(v) for v in got] == [_plain(v) for v in want], (service, column)
        assert rows.unknown == {"user_id": [999_999_999], "item_id": [424_242]}


def _plain(value: object) -> object:
    """A value as comparable Python: null for None and NaN, floats for number lists."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, list | np.ndarray):
        return [float(v) for v in value]
    return float(value) if isinstance(value, int | float | np.number) else value
