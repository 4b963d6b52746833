"""The Airflow DAGs: they import cleanly, and `dag.test()` runs them for real on the tiny shop.

One project serves the retraining runs in order: the first run promotes (no champion yet),
the second retrains nothing new and the gate keeps the champion; then the scheduled
materialization and the asset that triggers retraining run against the same project. A
validation failure gets its own project, since it must stop the run before any training.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mtlrec import pipeline
from tests.airflow.conftest import airflow_cli, airflow_env, dag_test, make_project
from tests.conftest import REPO

DAGBAG_REPORT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
report = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    report["dags"][dag_id] = {
        "timetable": type(dag.timetable).__name__,
        "schedule": str(dag.timetable),
        "max_active_runs": dag.max_active_runs,
        "params": {name: dag.params[name] for name in dag.params},
        "tasks": [t.task_id for t in dag.topological_sort()],
        "retries": {t.task_id: t.retries for t in dag.tasks},
        "backoff": {t.task_id: bool(t.retry_exponential_backoff) for t in dag.tasks},
        "downstream": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
        "teardowns": {
            t.task_id: sorted(u.task_id for u in t.upstream_list if u.is_setup)
            for t in dag.tasks if t.is_teardown
        },
    }
print(json.dumps(report, default=str))
"""
RETRAINING_ORDER = [
    "set_params",
    "validate",
    "featurize",
    "feast_apply",
    "materialize",
    "index",
    "build_dataset",
    "train",
    "evaluate",
    "baselines",
    "online_test",
    "gate",
]


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("dagbag")
    done = subprocess.run(
        [sys.executable, "-c", DAGBAG_REPORT, str(REPO / "dags")],
        env=airflow_env(home, REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_dagbag_imports_without_errors(dagbag: dict) -> None:
    assert dagbag["errors"] == {}
    assert set(dagbag["dags"]) == {
        "mtl_retraining",
        "feature_materialization",
        "landing_validation",
    }


def test_retraining_runs_the_pipeline_in_the_data_order(dagbag: dict) -> None:
    dag = dagbag["dags"]["mtl_retraining"]
    assert [task for task in dag["tasks"] if task in RETRAINING_ORDER] == RETRAINING_ORDER
    assert dag["downstream"]["gate"] == ["champion_kept", "promoted"]
    assert dag["downstream"]["promoted"] == dag["downstream"]["champion_kept"] == ["summary"]
    # The teardown puts params.yaml back after every run, failed or not.
    assert (
        dag["downstream"]["summary"] == ["restore_params"] and dag["tasks"][-1] == "restore_params"
    )
    assert dag["teardowns"] == {"restore_params": ["set_params"]}
    assert dag["max_active_runs"] == 1


def test_retraining_runs_every_dvc_stage_after_landing(dagbag: dict) -> None:
    """The DAG and dvc.yaml cannot drift: one task per stage after `land`, in dvc.yaml's order,
    then the gate (the `promote` stage), and the report in the summary task."""
    tasks = dagbag["dags"]["mtl_retraining"]["tasks"]
    dvc_tasks = tasks[tasks.index("set_params") + 1 : tasks.index("gate")]
    stages = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    assert ["land", *dvc_tasks, pipeline.GATE_STAGE, pipeline.REPORT_STAGE] == stages


def test_every_retraining_task_retries_and_feast_backs_off(dagbag: dict) -> None:
    dag = dagbag["dags"]["mtl_retraining"]
    assert all(retries >= 1 for retries in dag["retries"].values()), dag["retries"]
    assert dag["backoff"]["feast_apply"] and dag["backoff"]["materialize"]
    assert dagbag["dags"]["feature_materialization"]["backoff"]["materialize"]


def test_retraining_form_starts_from_params_yaml(dagbag: dict) -> None:
    """The form shows what `dvc repro` would use now; force-promote is off unless ticked."""
    form = dagbag["dags"]["mtl_retraining"]["params"]
    current = yaml.safe_load((REPO / "params.yaml").read_text())
    for name in ("bottom", "epochs", "loss_weighting"):
        section, key = pipeline.RUN_PARAMS[name].split(".")
        assert form[name] == current[section][key], name
    assert form["force_promote"] is False
    assert form["online_test"] == current["gate"]["online_test"]


def test_schedules(dagbag: dict) -> None:
    dags = dagbag["dags"]
    assert dags["mtl_retraining"]["timetable"] == "AssetTriggeredTimetable"
    assert "mtlrec_validated_data" in dags["mtl_retraining"]["schedule"]
    assert dags["feature_materialization"]["timetable"] == "CronDataIntervalTimetable"
    assert dags["landing_validation"]["tasks"] == ["new_batches", "validate"]


def test_run_id_reaches_promote_under_its_name() -> None:
    from mtlrec.evaluation.promote import RUN_ID_ENV

    assert pipeline.RUN_ID_ENV == RUN_ID_ENV


# --- dag.test() end to end --------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    project: Path
    env: dict[str, str]

    @property
    def database(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"]) / "airflow.db"

    def metrics(self, name: str) -> dict:
        return json.loads((self.project / "metrics" / f"{name}.json").read_text())

    def experiment(self, run_id: str) -> dict | None:
        return pipeline.experiment(self.project, pipeline.experiment_name(run_id))


def _deploy(root: Path) -> Deployment:
    project = make_project(root / "project")
    env = airflow_env(root / "airflow", project)
    (root / "airflow").mkdir()
    airflow_cli(env, "db", "migrate")
    return Deployment(project, env)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return _deploy(tmp_path_factory.mktemp("dag_test"))


@pytest.fixture(scope="module")
def first_run(deployment: Deployment) -> dict:
    # force_promote from the form: a value for this run only (the first run promotes anyway)
    return dag_test(deployment.env, "mtl_retraining", {"epochs": 1, "force_promote": True})


@pytest.fixture(scope="module")
def second_run(deployment: Deployment, first_run: dict) -> dict:
    return dag_test(deployment.env, "mtl_retraining", {"epochs": 1})


@pytest.mark.slow
def test_first_run_promotes_its_model(deployment: Deployment, first_run: dict) -> None:
    assert first_run["state"] == "success", first_run["tasks"]
    skipped = {task for task, state in first_run["tasks"].items() if state == "skipped"}
    assert skipped == {"champion_kept"}, first_run["tasks"]
    gate = deployment.metrics("gate")
    assert gate["promoted"] and gate["version"] == "v1"
    assert pipeline.production(deployment.project) == {
        "version": "v1",
        "run_id": first_run["run_id"],
    }
    assert deployment.metrics("challenger")["ctr"]["auc"] is not None


@pytest.mark.slow
def test_first_run_is_a_dvc_experiment(deployment: Deployment, first_run: dict) -> None:
    """Params, data hashes and metrics of the run come back from `dvc exp show` by run id."""
    saved = deployment.experiment(first_run["run_id"])
    assert saved is not None, "dvc exp show does not list the run"
    params = saved["params"]["params.yaml"]["data"]
    # epochs came from the form; the bottom, not in the form's values, from the workspace
    workspace = yaml.safe_load((deployment.project / "params.yaml").read_text())
    assert params["train"]["epochs"] == 1 and params["gate"]["force_promote"] is True
    assert params["model"]["bottom"] == workspace["model"]["bottom"]
    assert saved["metrics"]["metrics/challenger.json"]["data"]["ctr"]["auc"] is not None
    assert saved["metrics"]["metrics/gate.json"]["data"]["promoted"] is True
    deps = saved["deps"]
    assert deps["data/training"]["hash"] and deps["models/challenger"]["hash"]
    lock = yaml.safe_load((deployment.project / "dvc.lock").read_text())["stages"]
    assert {"validate", "featurize", "build_dataset", "train", "evaluate", "promote"} <= set(lock)


@pytest.mark.slow
def test_the_forms_values_were_that_runs_only(
    deployment: Deployment, first_run: dict, second_run: dict
) -> None:
    """The first run's form ticked force_promote: params.yaml is as committed after it (no
    diff, comments kept), and the next run, with the form's defaults, used the committed value."""
    diff = subprocess.run(
        ["git", "diff", "--exit-code", "params.yaml"], cwd=deployment.project, capture_output=True
    )
    assert diff.returncode == 0, diff.stdout.decode()
    assert first_run["tasks"]["restore_params"] == "success"
    saved = deployment.experiment(second_run["run_id"])
    assert saved["params"]["params.yaml"]["data"]["gate"]["force_promote"] is False


@pytest.mark.slow
def test_validation_report_path_is_in_the_log(first_run: dict) -> None:
    assert "validation report: " in first_run["log"]  # the passing summary names the report
    assert "reports/data_docs/index.html" in first_run["log"]


@pytest.mark.slow
def test_second_run_keeps_the_champion(deployment: Deployment, second_run: dict) -> None:
    """Same data and params: the challenger does not beat the champion, which stays."""
    assert second_run["state"] == "success", second_run["tasks"]
    assert second_run["tasks"]["promoted"] == "skipped"
    assert second_run["tasks"]["champion_kept"] == "success"
    assert not deployment.metrics("gate")["promoted"]
    registry = deployment.project / "models" / "registry"
    assert sorted(path.name for path in registry.glob("v*")) == ["v1"]
    assert pipeline.production(deployment.project)["version"] == "v1"
    assert deployment.experiment(second_run["run_id"]) is not None


@pytest.mark.slow
def test_scheduled_materialization_loads_its_interval_with_overlap(
    deployment: Deployment, second_run: dict
) -> None:
    run = dag_test(
        deployment.env, "feature_materialization", logical_date="2026-01-04T01:00:00+00:00"
    )
    assert run["state"] == "success", run["log"][-4000:]
    summary = json.loads((deployment.project / "reports" / "materialize_hourly.json").read_text())
    end = datetime.fromisoformat(summary["end"])
    starts = {datetime.fromisoformat(load["start"]) for load in summary["loads"]}
    assert starts == {end - timedelta(hours=3)}, summary  # an hour's interval + 2 h overlap
    assert end <= datetime.now(UTC)


@pytest.mark.slow
def test_new_validated_data_triggers_retraining(deployment: Deployment, second_run: dict) -> None:
    """A batch not filed yet: landing_validation validates it and queues mtl_retraining."""
    airflow_cli(deployment.env, "dags", "reserialize")  # the scheduler's view of every DAG
    airflow_cli(deployment.env, "dags", "unpause", "mtl_retraining")  # paused DAGs wait
    batch = sorted((deployment.project / "data" / "validated" / "users").glob("*.parquet"))[-1]
    batch.unlink()
    run = dag_test(deployment.env, "landing_validation")
    assert run["state"] == "success", run["log"][-4000:]
    assert run["tasks"] == {"new_batches": "success", "validate": "success"}
    assert batch.is_file()
    with sqlite3.connect(deployment.database) as db:
        events = db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.name = 'mtlrec_validated_data'"
        ).fetchall()
        queued = db.execute("SELECT target_dag_id FROM asset_dag_run_queue").fetchall()
    assert [json.loads(extra)["batches"] for (extra,) in events] == [[f"users/{batch.name}"]]
    assert queued == [("mtl_retraining",)]
    nothing_new = dag_test(deployment.env, "landing_validation")
    assert nothing_new["tasks"] == {"new_batches": "success", "validate": "skipped"}


@pytest.mark.slow
def test_validation_failure_stops_before_training(tmp_path: Path) -> None:
    deployment = _deploy(tmp_path)
    batch = sorted((deployment.project / "data" / "landing" / "impressions").glob("*.parquet"))[0]
    frame = pd.read_parquet(batch)
    frame.loc[frame.index[0], "click"] = 7  # not a 0/1 label
    frame.to_parquet(batch, index=False)
    run = dag_test(deployment.env, "mtl_retraining", {"epochs": 1})
    assert run["state"] == "failed"
    assert run["tasks"]["validate"] == "failed"
    for task in ("featurize", "build_dataset", "train", "gate", "summary"):
        assert run["tasks"][task] == "upstream_failed", run["tasks"]
    assert "validation failed" in run["log"] and "quarantine" in run["log"]
    assert "reports/data_docs/index.html" in run["log"]  # the report to read
    assert not (deployment.project / "models" / "challenger").exists()
    assert not (deployment.project / "models" / "registry").exists()
    assert (deployment.project / "data" / "quarantine" / "impressions" / batch.stem).is_dir()
