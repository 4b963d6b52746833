"""`dag.test()` one DAG of a folder and print its outcome as `RESULT {json}`.

Usage: dag_test_runner.py DAGS_FOLDER DAG_ID CONF_JSON OPTIONS_JSON, where OPTIONS_JSON may hold
`logical_date` (ISO 8601). Run in a child process with the Airflow environment set, so each
test gets its own AIRFLOW_HOME and metadata DB.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime


def main(folder: str, dag_id: str, conf: str, options: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    assert not bag.import_errors, bag.import_errors
    kwargs = {"run_conf": json.loads(conf)}
    logical_date = json.loads(options).get("logical_date")
    if logical_date:
        kwargs["logical_date"] = datetime.fromisoformat(logical_date)
    run = bag.get_dag(dag_id).test(**kwargs)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print("RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": states}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
