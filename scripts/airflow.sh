#!/usr/bin/env bash
# `make airflow`: Airflow for this checkout on http://localhost:${AIRFLOW_PORT:-8080}.
# `airflow standalone` runs the api-server (UI), scheduler, dag-processor and triggerer with the
# LocalExecutor and a SQLite metadata DB under airflow_home/ (gitignored). Log in as `admin`:
# the password is printed at the first start and kept in
# airflow_home/simple_auth_manager_passwords.json.generated. Ctrl-C (or SIGTERM to this script)
# stops every process it started: Airflow runs in its own process group, stopped as a whole.
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

# Sized for this machine: as many task slots (LocalExecutor worker processes) as cores, one
# api-server worker and one DAG-parsing process. Airflow's defaults (32 workers, ~1.8 GB) are
# for a server; any AIRFLOW__* set by the caller wins.
cores="$(nproc 2>/dev/null || echo 2)"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-$cores}"
export AIRFLOW__API__WORKERS="${AIRFLOW__API__WORKERS:-1}"
export AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="${AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES:-1}"

echo "Airflow UI: http://localhost:$port  (user admin; password in" \
  "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"

# `airflow standalone` leaves its scheduler, api-server, triggerer and workers running when it
# gets SIGTERM: start it as the leader of its own process group and stop the whole group.
setsid airflow standalone &
group=$!
stop() {
  trap - INT TERM EXIT
  kill -TERM -- "-$group" 2>/dev/null || true
  for _ in $(seq 60); do
    kill -0 -- "-$group" 2>/dev/null || return 0
    sleep 0.5
  done
  echo "Airflow did not stop within 30 s: killing it" >&2
  kill -KILL -- "-$group" 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT
wait "$group"
