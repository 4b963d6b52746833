"""Materialization into the local (SQLite) online store: full, incremental, idempotent, and
online reads equal to the offline store's latest rows.

The module drives one online store through a fixed sequence (full load up to mid-data, then
incremental up to now, then again, then a full reload) and checks each step's effect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mtlrec.features import store
from tests.features.conftest import (
    VIEW_KEYS,
    assert_same_values,
    entity_keys,
    offline_latest,
    online_snapshot,
    online_values,
    read_training,
)

FULL_START = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Steps:
    repo: Path
    features: Path
    mid: datetime
    to_mid: store.MaterializeSummary
    at_mid: pd.DataFrame  # user_activity served right after the load up to `mid`
    incremental: store.MaterializeSummary
    after_incremental: dict[str, pd.DataFrame]
    incremental_again: store.MaterializeSummary
    full_again: store.MaterializeSummary
    after_full_again: dict[str, pd.DataFrame]


@pytest.fixture(scope="module")
def steps(feature_project: Path) -> Steps:
    repo, features = feature_project / "feature_repo", feature_project / "data" / "features"
    first_snapshot = pd.read_parquet(features / "user_activity.parquet")["event_timestamp"].min()
    mid = (first_snapshot + pd.Timedelta(days=3)).to_pydatetime()
    to_mid = store.materialize(repo, end=mid, start=FULL_START)
    at_mid = online_values(repo, "user_activity", entity_keys(features, "user_activity"))
    incremental = store.materialize(repo, end=datetime.now(UTC))
    after_incremental = online_snapshot(repo, features)
    incremental_again = store.materialize(repo, end=datetime.now(UTC))
    full_again = store.materialize(
        repo, end=datetime.now(UTC), start=FULL_START, summary_file=feature_project / "m.json"
    )
    after_full_again = online_snapshot(repo, features)
    return Steps(
        repo,
        features,
        mid,
        to_mid,
        at_mid,
        incremental,
        after_incremental,
        incremental_again,
        full_again,
        after_full_again,
    )


def test_full_load_up_to_a_day_serves_that_days_snapshot(steps: Steps) -> None:
    """Online values after loading up to `mid` are the offline rows as of `mid`, not later."""
    expected = offline_latest(steps.features, "user_activity", pd.Timestamp(steps.mid))
    served = steps.at_mid.loc[expected.index]
    assert_same_values(served, expected)
    assert steps.to_mid.mode == "full"
    loads = {load.view: load.rows for load in steps.to_mid.loads}
    assert loads["user_activity"] == len(expected)


def test_online_equals_offline_latest_after_incremental(steps: Steps) -> None:
    now = pd.Timestamp.now(tz="UTC")
    for view in VIEW_KEYS:
        expected = offline_latest(steps.features, view, now)
        assert_same_values(steps.after_incremental[view].loc[expected.index], expected)


def test_incremental_continues_where_the_last_load_ended(steps: Steps) -> None:
    assert steps.incremental.mode == "incremental"
    assert {load.start for load in steps.incremental.loads} == {steps.to_mid.end}
    rows = {load.view: load.rows for load in steps.incremental.loads}
    # The snapshots after `mid` are new; every profile predates the simulated days.
    assert rows["user_activity"] > 0 and rows["item_popularity"] > 0
    assert rows["user_profile"] == 0 and rows["item_text"] == 0
    # Nothing happened since: a second incremental run reads an empty window.
    assert steps.incremental_again.rows == 0


def test_materializing_again_leaves_the_same_online_values(steps: Steps) -> None:
    assert steps.full_again.rows == sum(len(frame) for frame in steps.after_full_again.values())
    for view in VIEW_KEYS:
        pd.testing.assert_frame_equal(steps.after_full_again[view], steps.after_incremental[view])


def test_summary_counts_rows_per_view_and_is_written(steps: Steps) -> None:
    summary = steps.full_again
    assert summary.views == sorted(VIEW_KEYS) and summary.online_store == "sqlite"
    for load in summary.loads:
        assert load.rows == len(entity_keys(steps.features, load.view)), load
    written = (steps.repo.parent / "m.json").read_text()
    assert '"rows": ' in written and '"mode": "full"' in written
    text = str(summary)
    assert "user_activity" in text and f"{summary.rows:,} rows" in text


def test_progress_is_printed_per_view(steps: Steps, capsys: pytest.CaptureFixture[str]) -> None:
    store.materialize(steps.repo, end=datetime.now(UTC))
    printed = capsys.readouterr().out
    for number, view in enumerate(sorted(VIEW_KEYS), start=1):
        assert f"[{number}/{len(VIEW_KEYS)}] {view}: 0 rows" in printed


def test_an_end_in_the_future_is_refused(steps: Steps) -> None:
    with pytest.raises(ValueError, match="in the future"):
        store.materialize(steps.repo, end=datetime.now(UTC) + timedelta(days=30))


def test_serving_computes_the_on_demand_view_as_training_did(
    steps: Steps, training_set: Path
) -> None:
    """Same transformation online and offline: query match and title embedding per request."""
    rows = read_training(training_set)
    search = rows[rows["query"].notna()].drop_duplicates(["item_id", "query"]).head(40)
    features = ["query_item_match:title_jaccard", "query_item_match:category_in_query"]
    features += ["query_item_match:query_coverage", "item_text:title_embedding"]
    served = (
        store.open_store(steps.repo)
        .get_online_features(
            features=features,
            entity_rows=[
                {"item_id": int(item), "query": query}
                for item, query in zip(search["item_id"], search["query"], strict=True)
            ],
            full_feature_names=True,
        )
        .to_df()
    )
    columns = [name.replace(":", "__") for name in features]
    expected = search[columns].reset_index(drop=True)
    assert_same_values(served[columns], expected)


def test_apply_registers_every_definition(feature_project: Path) -> None:
    applied = json.loads((feature_project / "data" / "feast" / "apply.json").read_text())
    assert applied == {
        "entities": ["item", "user"],
        "feature_views": sorted(VIEW_KEYS),
        "on_demand_feature_views": ["query_item_match"],
        "feature_services": ["mtl_v1", "mtl_v2", "mtl_v3"],
    }


PROBE = """
from feast import FeatureService

from features.user import user_profile

plan_probe = FeatureService(name="plan_probe", features=[user_profile])
"""


def test_plan_shows_only_real_changes(feature_project: Path) -> None:
    """Re-parsing the repo moves every data source's timestamps: no change for the plan. A
    new definition is one line, and nothing is applied."""
    repo = feature_project / "feature_repo"
    assert store.plan(repo) == "Feast registry: no changes (every definition is as applied)"
    probe = repo / "plan_probe.py"
    probe.write_text(PROBE)
    try:
        assert store.plan(repo) == "+ feature service plan_probe"
    finally:
        probe.unlink()
    assert "plan_probe" not in store.registry_contents(repo)["feature_services"]
