"""Keep the online store fresh: materialize each hour's features, with an overlap for late data.

Each run loads its own data interval into Feast's online store, reaching `OVERLAP` back into
the previous interval so that events which landed late are picked up by the next run.
Writes are upserts of each entity's latest row, so the overlap and any rerun are harmless,
and a cleared run reloads exactly its window. Feast and its stores may blip: the task
retries with exponential backoff.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task

PROJECT = Path(os.environ.get("MTLREC_PROJECT_DIR", Path(__file__).resolve().parents[1]))
OVERLAP = timedelta(hours=2)
log = logging.getLogger(__name__)


@dag(
    dag_id="feature_materialization",
    # A data-interval timetable: each run owns [interval start, interval end).
    schedule=CronDataIntervalTimetable("@hourly", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["mtlrec", "features"],
    doc_md=__doc__,
)
def feature_materialization() -> None:
    @task(
        retries=4,
        retry_delay=timedelta(seconds=30),
        retry_exponential_backoff=2.0,  # 30 s, 1 min, 2 min, 4 min
        max_retry_delay=timedelta(minutes=10),
    )
    def materialize(data_interval_start=None, data_interval_end=None) -> str:
        from mtlrec import pipeline

        start, end = pipeline.incremental_window(data_interval_start, data_interval_end, OVERLAP)
        log.info("incremental window %s .. %s (overlap %s)", start, end, OVERLAP)
        with pipeline.dvc_lock(PROJECT):
            summary = pipeline.materialize(PROJECT, end=end, start=start)
        log.info("%s", summary)
        return summary

    materialize()


feature_materialization()
