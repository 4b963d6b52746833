"""The production profile against the real servers: PostgreSQL SQL registry, Redis online store.

Each run gets its own PostgreSQL database (dropped afterwards) and its own Feast project name
(Redis keys end with it; teardown deletes them), so reruns and parallel runs never meet. In CI
(CI=true) an unreachable server fails the run; elsewhere the module is skipped with the reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
import redis

from mtlrec.config import FeaturesConfig, Params
from mtlrec.features import dataset, store
from tests.conftest import unavailable
from tests.features.conftest import (
    RICHEST_SERVICE,
    VIEW_KEYS,
    assert_same_values,
    offline_latest,
    online_snapshot,
    read_training,
)

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
FULL_START = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Production:
    root: Path
    project: str
    database: str
    applied: dict[str, list[str]]
    first: store.MaterializeSummary
    redis: redis.Redis

    @property
    def repo(self) -> Path:
        return self.root / "feature_repo"

    @property
    def features(self) -> Path:
        return self.root / "data" / "features"

    def redis_keys(self) -> int:
        return sum(1 for _ in self.redis.scan_iter(match=f"*{self.project}".encode(), count=1000))


def _unreachable() -> str | None:
    """Why the servers cannot be used, or None."""
    try:
        psycopg.connect(POSTGRES_ADMIN, connect_timeout=3).close()
        redis.Redis(REDIS_HOST, REDIS_PORT, socket_connect_timeout=3).ping()
    except (psycopg.Error, redis.RedisError) as error:
        return f"PostgreSQL/Redis at 127.0.0.1 unreachable: {error}"
    return None


def _admin(statement: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(statement)


@pytest.fixture(scope="module")
def production(feature_project: Path) -> Iterator[Production]:
    reason = _unreachable()
    if reason is not None:
        unavailable(reason)
    name = f"mtlrec_test_{uuid.uuid4().hex[:12]}"  # project and database alike
    _admin(f'CREATE DATABASE "{name}"')
    client = redis.Redis(REDIS_HOST, REDIS_PORT)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv(store.PROFILE_ENV, "production")
            env.setenv("MTLREC_FEAST_PROJECT", name)
            env.setenv(
                "MTLREC_FEAST_REGISTRY_URL", f"postgresql+psycopg://postgres@127.0.0.1/{name}"
            )
            env.setenv("MTLREC_FEAST_REDIS", f"{REDIS_HOST}:{REDIS_PORT}")
            repo = feature_project / "feature_repo"
            applied = store.apply(repo)
            first = store.materialize(repo, end=datetime.now(UTC), start=FULL_START)
            state = Production(feature_project, name, name, applied, first, client)
            try:
                yield state
            finally:
                store.open_store(repo).teardown()
                assert state.redis_keys() == 0, "teardown left Redis keys behind"
    finally:
        client.close()
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_same_definitions_as_the_local_profile(production: Production) -> None:
    local = json.loads((production.root / "data" / "feast" / "apply.json").read_text())
    assert production.applied == local


def test_the_registry_lives_in_postgres(production: Production) -> None:
    url = f"postgresql://postgres@127.0.0.1:5432/{production.database}"
    with psycopg.connect(url) as connection:
        views = connection.execute(
            "SELECT feature_view_name FROM feature_views WHERE project_id = %s",
            (production.project,),
        ).fetchall()
        on_demand = connection.execute(
            "SELECT feature_view_name FROM on_demand_feature_views WHERE project_id = %s",
            (production.project,),
        ).fetchall()
    assert sorted(name for (name,) in views) == sorted(VIEW_KEYS)
    assert [name for (name,) in on_demand] == ["query_item_match"]


def test_redis_serves_the_offline_latest_rows(production: Production) -> None:
    assert production.first.online_store == "redis"
    assert production.redis_keys() > 0
    now = pd.Timestamp.now(tz="UTC")
    served = online_snapshot(production.repo, production.features)
    for view in VIEW_KEYS:
        expected = offline_latest(production.features, view, now)
        assert_same_values(served[view].loc[expected.index], expected)


def test_materializing_again_changes_nothing_in_redis(production: Production) -> None:
    before, keys = online_snapshot(production.repo, production.features), production.redis_keys()
    assert store.materialize(production.repo, end=datetime.now(UTC)).rows == 0  # incremental
    again = store.materialize(production.repo, end=datetime.now(UTC), start=FULL_START)
    assert again.rows == production.first.rows
    after = online_snapshot(production.repo, production.features)
    assert production.redis_keys() == keys
    for view in VIEW_KEYS:
        pd.testing.assert_frame_equal(after[view], before[view])


def test_training_set_through_postgres_equals_the_local_one(
    production: Production, training_set: Path, params: Params, tmp_path: Path
) -> None:
    dataset.run(
        params.dataset,
        FeaturesConfig(feature_service=RICHEST_SERVICE),
        production.root / "data" / "validated",
        production.repo,
        tmp_path,
    )
    local, remote = read_training(training_set), read_training(tmp_path)
    embedding = "item_text__title_embedding"
    np.testing.assert_array_equal(np.stack(remote.pop(embedding)), np.stack(local.pop(embedding)))
    pd.testing.assert_frame_equal(remote, local)
    schema = (tmp_path / "schema.json").read_text()
    assert schema == (training_set / "schema.json").read_text()
