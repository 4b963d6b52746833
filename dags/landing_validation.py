"""Validate new landing batches; when they pass, announce them to retraining.

Every hour: if `data/landing/` holds batches that validation has not filed yet, run the
validation gate (Great Expectations; a failing batch goes to `data/quarantine/` and the task
fails naming each failed expectation). Passing batches update the `mtlrec_validated_data`
asset, which schedules the `mtl_retraining` DAG. Nothing new: the check short-circuits, no
asset event, no retraining.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Asset, dag, task

PROJECT = Path(os.environ.get("MTLREC_PROJECT_DIR", Path(__file__).resolve().parents[1]))
VALIDATED_DATA = Asset(name="mtlrec_validated_data", uri=(PROJECT / "data" / "validated").as_uri())
log = logging.getLogger(__name__)


@dag(
    dag_id="landing_validation",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=20)},
    tags=["mtlrec", "data"],
    doc_md=__doc__,
)
def landing_validation() -> None:
    @task.short_circuit
    def new_batches() -> list[str]:
        """The landing batches validation has not filed yet (empty: stop here)."""
        from mtlrec import pipeline

        pending = pipeline.pending_batches(PROJECT)
        log.info("%d new landing batches: %s", len(pending), pending)
        return pending

    @task(outlets=[VALIDATED_DATA])
    def validate(batches: list[str], outlet_events=None) -> str:
        from mtlrec import pipeline

        result = pipeline.stage_task(PROJECT, pipeline.VALIDATE_STAGE)  # as mtl_retraining runs it
        outlet_events[VALIDATED_DATA].extra = {"batches": batches}
        return result

    validate(new_batches())


landing_validation()
