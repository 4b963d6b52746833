"""`make airflow` (scripts/airflow.sh): sized for the machine, and stopping it stops everything.

The script runs for real (`airflow standalone`, SQLite under a temporary AIRFLOW_HOME, a free
port); the test waits until the API server answers, takes every process the script started,
sends SIGTERM (what a service manager or `kill` sends; Ctrl-C is SIGINT) and checks that none
of them is left. Twice: a second start and stop must leave nothing either.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import REPO, tool_env

pytestmark = pytest.mark.slow
STARTED_WITHIN = 300  # seconds: the first start migrates the metadata DB


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _started(script: subprocess.Popen, port: int, log: Path) -> list[psutil.Process]:
    """Wait for the API server; every process of the script's tree once all four run."""
    deadline = time.monotonic() + STARTED_WITHIN
    while time.monotonic() < deadline:
        assert script.poll() is None, f"airflow.sh exited:\n{log.read_text()[-4000:]}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/version", timeout=2).status_code < 500:
                tree = psutil.Process(script.pid).children(recursive=True)
                names = " ".join(" ".join(p.cmdline()) for p in tree if p.is_running())
                if all(part in names for part in ("scheduler", "triggerer", "dag-processor")):
                    return tree
        except (httpx.HTTPError, psutil.Error):
            pass
        time.sleep(1)
    raise TimeoutError(f"Airflow did not start:\n{log.read_text()[-4000:]}")


def _alive(processes: list[psutil.Process]) -> list[str]:
    left = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return left


def test_sigterm_stops_every_process_it_started(tmp_path: Path) -> None:
    port = _free_port()
    env = {**tool_env(), "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW_PORT": str(port)}
    env.pop("AIRFLOW__CORE__PARALLELISM", None)
    for attempt in (1, 2):
        log = tmp_path / f"airflow_{attempt}.log"
        with log.open("w") as out:
            script = subprocess.Popen(
                ["bash", "scripts/airflow.sh"], cwd=REPO, env=env, stdout=out, stderr=out
            )
        try:
            tree = _started(script, port, log)
            # Sized for the machine: one task slot per core (Airflow's default is 32).
            assert _environ(tree, "PARALLELISM") == str(len(os.sched_getaffinity(0)))
            script.send_signal(signal.SIGTERM)
            script.wait(timeout=60)
        finally:
            if script.poll() is None:
                script.kill()
        deadline = time.monotonic() + 10
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _alive(tree) == [], f"attempt {attempt}: left running:\n{_alive(tree)}"


def _environ(tree: list[psutil.Process], name: str) -> str:
    """AIRFLOW__CORE__<name> as the script exported it to Airflow's processes."""
    for process in tree:
        try:
            value = process.environ().get(f"AIRFLOW__CORE__{name}")
        except psutil.Error:
            continue
        if value is not None:
            return value
    raise AssertionError(f"no Airflow process has AIRFLOW__CORE__{name}")
