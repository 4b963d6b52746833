"""Retrain the multi-task model: validate -> featurize -> feast apply -> materialize ->
(DVC) build dataset -> train -> evaluate -> promote (or keep the champion).

This file only says when and in what order; each task calls one function of
`mtlrec.pipeline`, the same code the `dvc repro` stages run.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

# The project checkout the tasks work in: this file's repo unless the deployment says otherwise.
PROJECT = Path(os.environ.get("MTLREC_PROJECT_DIR", Path(__file__).resolve().parents[1]))
TRANSIENT = {"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True}


@dag(
    dag_id="mtl_retraining",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["mtlrec", "training"],
    doc_md=__doc__,
)
def mtl_retraining() -> None:
    @task
    def validate() -> str:
        from mtlrec import pipeline

        return pipeline.validate(PROJECT)

    @task
    def featurize() -> str:
        from mtlrec import pipeline

        return pipeline.featurize(PROJECT)

    @task(**TRANSIENT)
    def feast_apply() -> dict:
        from mtlrec import pipeline

        return pipeline.feast_apply(PROJECT)

    @task(**TRANSIENT)
    def materialize() -> str:
        from mtlrec import pipeline

        return pipeline.materialize(PROJECT)

    @task
    def record_native_stages() -> str:
        from mtlrec import pipeline

        return pipeline.record_native_stages(PROJECT)

    @task
    def build_dataset() -> str:
        from mtlrec import pipeline

        return pipeline.run_stage(PROJECT, "build_dataset")

    @task
    def train() -> str:
        from mtlrec import pipeline

        return pipeline.run_stage(PROJECT, "train")

    @task
    def evaluate() -> str:
        from mtlrec import pipeline

        return pipeline.run_stage(PROJECT, "evaluate")

    @task
    def promote() -> str:
        """The champion/challenger gate: promote, or keep the champion."""
        from mtlrec import pipeline

        return pipeline.run_stage(PROJECT, "promote")

    (
        validate()
        >> featurize()
        >> feast_apply()
        >> materialize()
        >> record_native_stages()
        >> build_dataset()
        >> train()
        >> evaluate()
        >> promote()
    )


mtl_retraining()
