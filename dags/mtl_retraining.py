"""Retrain the multi-task model and promote it only if it beats the champion.

`set_params` -> one task per stage of dvc.yaml after `land`, in the data's order (`validate`,
`featurize`, `feast_apply`, `materialize`, `index`, `build_dataset`, `train`, `evaluate`,
`baselines`, `online_test`) -> `gate` (the `promote` stage) -> `promoted` or `champion_kept` ->
`summary` (the `report` stage, then the run saved as a DVC experiment; its log shows the
per-task metrics table of reports/metrics.md).

* Every stage runs as `dvc repro --single-item <stage>`: dvc.lock records exactly what ran (the
  command of dvc.yaml, its inputs' hashes), a stage whose inputs did not change is skipped in
  seconds, and `dvc repro` reproduces the run. The stages come from `mtlrec.stages`, the one
  declaration behind the CLI and dvc.yaml.
* Triggered from the form (**Trigger**; the fields below), or by the `mtlrec_validated_data`
  asset when `landing_validation` has filed new batches (then with the form's defaults).
* The form starts from the workspace's `params.yaml`, what `dvc repro` would use now. Its
  model fields are written there for the run, as `dvc exp run --set-param` would, so the DVC
  stages see them as params; `summary` saves the run as the DVC experiment named after the
  run id (`dvc exp show`), a promoted model version records the run id, and the teardown
  `restore_params` puts `params.yaml` back as it was: a form's values are that run's only.
* `gate` is the `promote` DVC stage: champion re-scored on the same test set, the online
  test's verdict, and the challenger registered and made production in one step only if the
  gate passes. The online test is forced: its champion is production now, which DVC does not
  track.
* One run at a time; every DVC command takes the workspace lock. Every task is safe to rerun,
  so a crashed worker's task is retried; Feast steps retry with backoff. A batch that fails
  validation fails its task at once: quarantined data needs a person, not a retry.

This file says when and in what order; each task calls one function of `mtlrec.pipeline`.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import pendulum
import yaml
from airflow.sdk import Asset, Param, chain, dag, task, teardown

from mtlrec.layout import Layout

# The project checkout the tasks work in: this file's repo unless the deployment says otherwise.
PROJECT = Path(os.environ.get("MTLREC_PROJECT_DIR", Path(__file__).resolve().parents[1]))
# The DVC stages the DAG runs, one task each in dvc.yaml's order (`land` fills the landing zone
# outside the DAG; `promote` is the `gate` task). tests/test_dags.py checks them against dvc.yaml.
STAGES = ("validate", "featurize", "feast_apply", "materialize", "index", "build_dataset",
          "train", "evaluate", "baselines", "online_test")  # fmt: skip
FEAST_STAGES = ("feast_apply", "materialize")  # Feast's stores may blip: retry with backoff
# Written by the `landing_validation` DAG whenever new batches pass validation.
VALIDATED_DATA = Asset.ref(name="mtlrec_validated_data")
# Every task is idempotent, so one retry covers a worker lost mid-task; Feast's stores (Redis,
# PostgreSQL in production) get more, with exponential backoff.
DEFAULTS = {"retries": 1, "retry_delay": timedelta(seconds=20)}
TRANSIENT = {
    "retries": 3,
    "retry_delay": timedelta(seconds=15),
    "retry_exponential_backoff": 2.0,  # 15 s, 30 s, 60 s
    "max_retry_delay": timedelta(minutes=5),
}
# The form's defaults: the workspace's params.yaml as committed, never a run's own values
# (during a run, the copy kept aside before its form's values were written): the form and the
# DAG's version do not change with what a run chose. Read at parse time, a small file.
CURRENT = yaml.safe_load(Layout(PROJECT).form_defaults.read_text())
PARAMS = {
    "bottom": Param(
        CURRENT["model"]["bottom"],
        type="string",
        enum=["shared_bottom", "mmoe", "ple"],
        title="Bottom",
        description="Shared layers under the task towers (params.yaml: model.bottom).",
        section="Model",
    ),
    "epochs": Param(
        CURRENT["train"]["epochs"],
        type="integer",
        minimum=1,
        title="Epochs",
        description="Passes over the training data (params.yaml: train.epochs).",
        section="Model",
    ),
    "loss_weighting": Param(
        CURRENT["train"]["loss_weighting"],
        type="string",
        enum=["static", "uncertainty"],
        title="Loss weighting",
        description="Static weights or learned uncertainty weighting (train.loss_weighting).",
        section="Model",
    ),
    "online_test": Param(
        CURRENT["gate"].get("online_test", "required"),
        type="string",
        enum=["required", "report", "off"],
        title="Online test",
        description=(
            "The challenger against the champion on simulated shoppers (A/B and interleaving): "
            "required (a challenger significantly worse online is not promoted), report (shown, "
            "not deciding) or off (gate.online_test)."
        ),
        section="Gate",
    ),
    "force_promote": Param(
        False,
        type="boolean",
        title="Force promote",
        description="Promote even if the gate refuses (gate.force_promote). Off by default.",
        section="Gate",
    ),
}
log = logging.getLogger(__name__)


@dag(
    dag_id="mtl_retraining",
    schedule=VALIDATED_DATA,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    default_args=DEFAULTS,
    params=PARAMS,
    tags=["mtlrec", "training"],
    doc_md=__doc__,
)
def mtl_retraining() -> None:
    @task
    def set_params(params: dict | None = None) -> dict:
        """The form's model fields into params.yaml, where the DVC stages read them, for this
        run only (`restore_params` writes the file back)."""
        from airflow.sdk.exceptions import AirflowFailException

        from mtlrec import pipeline
        from mtlrec.config import ConfigError

        try:
            written = pipeline.set_params(PROJECT, params or {})
        except ConfigError as error:  # a bad value does not get better on retry
            raise AirflowFailException(str(error)) from None
        log.info("params.yaml now has %s", written)
        return written

    @task
    def dvc_stage(stage: str) -> str:
        """`dvc repro --single-item STAGE`: its upstream ran as the tasks before it."""
        from mtlrec import pipeline

        return pipeline.stage_task(PROJECT, stage, force=stage == "online_test")[-2000:]

    @task.branch
    def gate(run_id: str | None = None) -> str:
        """The champion/challenger gate; follows `promoted` or `champion_kept`."""
        from mtlrec import pipeline

        result = pipeline.gate(PROJECT, str(run_id))
        log.info("%s", result)
        online = pipeline.online_result(PROJECT)
        if online is not None:
            log.info("online test: %s", online["verdict"]["reason"])
        return "promoted" if result.promoted else "champion_kept"

    @task
    def promoted(run_id: str | None = None) -> str:
        """The gate passed: production now serves the version this run registered."""
        from mtlrec import pipeline

        champion = pipeline.production(PROJECT)
        if champion is None or champion["run_id"] != run_id:
            raise RuntimeError(f"the gate passed but production is {champion}, not run {run_id}")
        log.info("production -> %s (made by run %s)", champion["version"], run_id)
        return champion["version"]

    @task
    def champion_kept() -> str:
        """The gate refused: production is unchanged (the reasons are in metrics/gate.json)."""
        from mtlrec import pipeline

        champion = pipeline.production(PROJECT)
        log.info("champion kept: %s", champion or "none (nothing in production yet)")
        return champion["version"] if champion else "none"

    @teardown
    def restore_params() -> bool:
        """params.yaml back as committed, whatever became of the run: a form's values are
        that run's only, never the next run's defaults."""
        from mtlrec import pipeline

        restored = pipeline.restore_params(PROJECT)
        log.info("params.yaml %s", "restored as committed" if restored else "was not changed")
        return restored

    @task(trigger_rule="none_failed_min_one_success")
    def summary(run_id: str | None = None) -> dict:
        """Write reports/metrics.md (the `report` stage), save the run as a DVC experiment
        (params, data hashes, metrics) and report it."""
        import json

        from mtlrec import pipeline

        pipeline.stage_task(PROJECT, pipeline.REPORT_STAGE)  # reports/metrics.md
        stages = [*STAGES, pipeline.GATE_STAGE, pipeline.REPORT_STAGE]
        name = pipeline.record_run(PROJECT, str(run_id), stages)
        report = pipeline.summarize(PROJECT, str(run_id), name)
        log.info("metrics (reports/metrics.md):\n%s", report.pop("table"))
        log.info("run summary:\n%s", json.dumps(report, indent=2, default=str))
        served = report["serving"]
        log.info(
            "serving answers with %s%s",
            served["version"] or f"the production alias ({served['follows']})",
            f" at {served['url']}" if served["url"] else " (set MTLREC_SERVE_URL to ask it)",
        )
        log.info(
            "saved as DVC experiment %r: `dvc exp show`; `dvc exp apply %s` restores it", name, name
        )
        return report

    stages = [
        dvc_stage.override(task_id=stage, **(TRANSIENT if stage in FEAST_STAGES else {}))(stage)
        for stage in STAGES
    ]
    outcomes = [promoted(), champion_kept()]
    written = set_params()
    chain(written, *stages, gate(), outcomes)
    outcomes >> summary() >> restore_params().as_teardown(setups=written)


mtl_retraining()
