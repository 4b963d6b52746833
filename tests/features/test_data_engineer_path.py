"""The data engineer's path (feature_repo/README.md), end to end with the real tools.

In a fresh copy of the project: train once, then add a feature view and a service version under
feature_repo/, point params.yaml at the service, `dvc repro` again, and the trained model reads
the new features. Git shows that nothing outside feature_repo/ and params.yaml was touched.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_project, tool_env

pytestmark = pytest.mark.slow

# A view over a column that featurize already writes (users' conversion rates) but no view
# exposed: the README's first case, no code needed. Names are this test's own.
NEW_VIEW = '''"""User conversion rates from the rolling-activity table."""

from data_sources import user_activity_source
from entities import user
from feast import FeatureView, Field
from feast.types import Float32
from ttls import DAILY_SNAPSHOT_TTL

user_conversion_trial = FeatureView(
    name="user_conversion_trial",
    entities=[user],
    ttl=DAILY_SNAPSHOT_TTL,
    schema=[
        Field(
            name=f"cvr_{days}d",
            dtype=Float32,
            tags={"kind": "numeric"},
            description=f"Purchases / clicks over the {days} days before the snapshot",
        )
        for days in (1, 7, 30)
    ],
    source=user_activity_source,
    online=True,
    description="How often the user's clicks become purchases; daily snapshot, events before D.",
    tags={"owner": "recsys-data", "domain": "user"},
)
'''

NEW_SERVICE = """

from features.user_conversion_trial import user_conversion_trial  # noqa: E402

mtl_trial = FeatureService(
    name="mtl_trial",
    features=[
        user_profile,
        user_activity,
        item_profile,
        item_popularity,
        query_item_match,
        user_conversion_trial,
    ],
    description="v2 plus the user's conversion rates.",
    tags={"owner": "recsys-ml", "model": "mtl"},
)
"""
NEW_COLUMNS = {f"user_conversion_trial__cvr_{days}d" for days in (1, 7, 30)}


def _run(root: Path, *command: str) -> str:
    done = subprocess.run(
        command, cwd=root, env=tool_env(), capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _model_inputs(root: Path) -> tuple[int, set[str]]:
    """The trained model's input width and the feature columns it was fitted on."""
    config = json.loads((root / "models" / "challenger" / "config.json").read_text())
    schema = json.loads((root / "data" / "training" / "schema.json").read_text())
    return config["input_dim"], {feature["name"] for feature in schema["features"]}


def _add_view_and_service(root: Path) -> None:
    """Exactly what the guide says to do: two files under feature_repo/ and params.yaml."""
    (root / "feature_repo" / "features" / "user_conversion_trial.py").write_text(NEW_VIEW)
    services = root / "feature_repo" / "feature_services.py"
    services.write_text(services.read_text() + NEW_SERVICE)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["features"]["feature_service"] = "mtl_trial"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_new_view_and_service_version_grow_the_model_input(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # The baseline is named, not taken from the default, so the test extends what it trains.
    root = copy_project(
        tmp_path_factory.mktemp("data_engineer"),
        features={"feature_service": "mtl_v2"},
        train={"epochs": 1},
    )
    _run(root, "dvc", "repro")
    width_before, features_before = _model_inputs(root)
    _run(root, "git", "add", "-A")
    _run(root, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline")

    _add_view_and_service(root)
    changed = _run(root, "git", "status", "--porcelain", "--untracked-files=all").splitlines()
    touched = {line[3:] for line in changed}
    assert touched == {
        "feature_repo/features/user_conversion_trial.py",
        "feature_repo/feature_services.py",
        "params.yaml",
    }

    # The guide's plan step shows exactly the new view and service (timestamps aside).
    plan = _run(root, "mtlrec", "feast-plan").strip().splitlines()
    assert plan == ["+ feature view user_conversion_trial", "+ feature service mtl_trial"]

    log = _run(root, "dvc", "repro")
    assert "Stage 'featurize' didn't change, skipping" in log  # no new offline computation
    width_after, features_after = _model_inputs(root)
    assert features_after - features_before == NEW_COLUMNS
    assert width_after > width_before
    spec = json.loads((root / "models" / "challenger" / "feature_spec.json").read_text())
    assert {numeric["name"] for numeric in spec["numerics"]} >= NEW_COLUMNS
