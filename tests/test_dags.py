"""The Airflow DAGs: they import cleanly, and `dag.test()` runs the retraining end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_project, tool_env

IMPORT_CHECK = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": sorted(bag.dag_ids),
                  "tasks": {d: [t.task_id for t in bag.dags[d].tasks] for d in bag.dag_ids}}))
"""

DAG_TEST = """
import json, sys
sys.path.insert(0, sys.argv[1])
from mtl_retraining import mtl_retraining
dag = mtl_retraining()
run = dag.test()
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("RESULT " + json.dumps({"state": str(run.state), "tasks": states}))
"""


def _airflow_env(home: Path, project: Path) -> dict[str, str]:
    return {
        **tool_env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "MTLREC_PROJECT_DIR": str(project),
    }


def _python(code: str, *args: str, env: dict, timeout: int = 300) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def test_dagbag_imports_without_errors(tmp_path: Path) -> None:
    out = _python(IMPORT_CHECK, str(REPO / "dags"), env=_airflow_env(tmp_path, REPO))
    found = json.loads(out.strip().splitlines()[-1])
    assert found["errors"] == {}
    assert "mtl_retraining" in found["dags"]
    tasks = found["tasks"]["mtl_retraining"]
    assert tasks.index("validate") < tasks.index("materialize") < tasks.index("train")


@pytest.mark.slow
def test_dag_test_runs_retraining_end_to_end(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project", train={"epochs": 1})
    env = _airflow_env(tmp_path / "airflow", project)
    (tmp_path / "airflow").mkdir()
    subprocess.run(["mtlrec", "simulate"], cwd=project, env=env, check=True, capture_output=True)
    migrate = subprocess.run(
        ["airflow", "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
    )
    assert migrate.returncode == 0, migrate.stderr[-4000:]
    out = _python(DAG_TEST, str(project / "dags"), env=env, timeout=1200)
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    assert result["state"] == "success", result
    assert set(result["tasks"].values()) == {"success"}, result
    metrics = json.loads((project / "metrics" / "challenger.json").read_text())
    assert metrics["ctr"]["auc"] is not None
    lock = (project / "dvc.lock").read_text()
    for stage in ("validate", "featurize", "build_dataset", "train", "evaluate"):
        assert f"  {stage}:" in lock, f"{stage} not recorded in dvc.lock"
