"""What a stage reads is a dependency: change it, and `dvc status` lists that stage.

The tiny pipeline is reproduced up to `materialize` and `build_dataset` once; each test changes
one thing a stage reads in a copy of it (a param, a module of the package, the values of a table
another team publishes behind a feature view) and asks `dvc status` which stages are stale.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import copy_project, run_dvc, tool_env

pytestmark = pytest.mark.slow

REVIEWS_TABLE = "data/external/item_reviews.parquet"
# A view over a table that `featurize` does not write (feature_repo/README.md, "A view over a
# new table"): the data engineer's module, as the guide shows it.
REVIEWS_VIEW = '''"""Item reviews, published daily by the reviews team into data/external/."""

from pathlib import Path

from entities import item
from feast import FeatureView, Field, FileSource
from feast.data_format import ParquetFormat
from feast.types import Float32, Int64
from ttls import PROFILE_TTL

WORKSPACE = Path(__file__).resolve().parents[2]

item_reviews_source = FileSource(
    name="item_reviews",
    path=str(WORKSPACE / "data" / "external" / "item_reviews.parquet"),
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    description="data/external/item_reviews.parquet, published by the reviews team",
    tags={"owner": "reviews"},
)

item_reviews = FeatureView(
    name="item_reviews",
    entities=[item],
    ttl=PROFILE_TTL,
    schema=[
        Field(name="review_count", dtype=Int64, tags={"kind": "numeric"},
              description="Reviews written so far"),
        Field(name="review_score", dtype=Float32, tags={"kind": "numeric"},
              description="Mean review score, 1..5"),
    ],
    source=item_reviews_source,
    online=True,
    description="What shoppers wrote about the item.",
    tags={"owner": "reviews", "domain": "item"},
)
'''


def _stale(root: Path) -> dict[str, list]:
    """`dvc status`: stage -> what changed (an empty dict: nothing is stale)."""
    shown = json.loads(run_dvc(root, "status", "--json").stdout or "{}")
    return {name: changes for name, changes in shown.items() if not name.endswith(".dvc")}


def _changed_deps(changes: list) -> dict[str, str]:
    found: dict[str, str] = {}
    for change in changes:
        if isinstance(change, dict):
            found.update(change.get("changed deps", {}))
    return found


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("stale") / "project")
    run_dvc(root, "repro", "materialize", "build_dataset", timeout=1500)
    assert _stale(root).keys() <= {"train", "evaluate", "baselines", "online_test", "promote",
                                   "report", "index"}  # fmt: skip
    return root


@pytest.fixture
def workspace(reproduced: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(reproduced, copy, symlinks=True)
    return copy


def test_a_changed_window_param_reruns_featurize_and_the_views(workspace: Path) -> None:
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["features"]["windows_days"] = [1, 7, 14]
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stale = _stale(workspace)
    assert {"featurize", "feast_apply"} <= stale.keys(), stale
    assert "land" not in stale and "validate" not in stale


def test_a_changed_module_reruns_the_stages_that_import_it(workspace: Path) -> None:
    module = workspace / "src" / "mtlrec" / "features" / "store.py"
    module.write_text(module.read_text() + "\n# a change to the Feast helpers\n")
    stale = _stale(workspace)
    assert {"feast_apply", "materialize", "build_dataset"} <= stale.keys(), stale
    for name in ("feast_apply", "materialize", "build_dataset"):
        changed = _changed_deps(stale[name])  # the file, or the package folder a stage lists
        assert {"src/mtlrec/features/store.py", "src/mtlrec/features"} & changed.keys(), changed
    assert "land" not in stale and "featurize" not in stale


def _publish_reviews(root: Path, score: float) -> None:
    items = pd.concat(pd.read_parquet(f) for f in (root / "data/validated/items").glob("*.parquet"))
    table = pd.DataFrame({
        "item_id": items["item_id"].astype("int64"),
        "event_timestamp": pd.Timestamp("2025-12-01", tz="UTC"),
        "review_count": 3,
        "review_score": score,
    })  # fmt: skip
    (root / REVIEWS_TABLE).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(root / REVIEWS_TABLE, index=False)


def test_new_values_in_a_views_source_table_rerun_the_stages_that_read_it(
    workspace: Path,
) -> None:
    _publish_reviews(workspace, score=4.0)
    (workspace / "feature_repo" / "features" / "item_reviews.py").write_text(REVIEWS_VIEW)
    subprocess.run(
        ["mtlrec", "dvc-yaml"], cwd=workspace, env=tool_env(), check=True, capture_output=True
    )
    stages = yaml.safe_load((workspace / "dvc.yaml").read_text())["stages"]
    for name in ("materialize", "build_dataset"):  # read from the Feast definitions
        assert REVIEWS_TABLE in stages[name]["deps"], name
    run_dvc(workspace, "repro", "materialize", "build_dataset", timeout=1500)
    assert not {"materialize", "build_dataset"} & _stale(workspace).keys()

    _publish_reviews(workspace, score=2.5)  # the reviews team publishes new values
    stale = _stale(workspace)
    for name in ("materialize", "build_dataset"):
        assert name in stale and REVIEWS_TABLE in _changed_deps(stale[name]), stale
