#!/usr/bin/env bash
# `make airflow`: Airflow for this checkout on http://localhost:${AIRFLOW_PORT:-8080}.
# `airflow standalone` runs the api-server (UI), scheduler, dag-processor and triggerer with the
# LocalExecutor and a SQLite metadata DB under airflow_home/ (gitignored). Log in as `admin`:
# the password is printed at the first start and kept in
# airflow_home/simple_auth_manager_passwords.json.generated. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${AIRFLOW_PORT:-8080}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__API__PORT="$port"
# This machine only, unless AIRFLOW_HOST=0.0.0.0 asks for more.
export AIRFLOW__API__HOST="${AIRFLOW_HOST:-127.0.0.1}"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$port"
# After a crash, the restarted scheduler resets and retries the lost tasks within a minute.
export AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL=60
# The DAG tasks work in this checkout: its data/, models/, dvc.lock and git refs.
export MTLREC_PROJECT_DIR="$PWD"

echo "Airflow UI: http://localhost:$port  (user admin; password in" \
  "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
exec airflow standalone
