"""A real Airflow deployment for tests: its components as processes, its REST API as a client.

Each component (api-server, scheduler, dag-processor, celery worker) runs as its own process
group with its log under AIRFLOW_HOME, so a test can kill one the way a crash would and start
it again. Nothing is mocked: the tests talk to the API server over HTTP like the UI does.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import tool_env

USER, PASSWORD = "admin", "mtlrec-test-password"
FINISHED = {"success", "failed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Airflow:
    """One Airflow installation: a home, a metadata DB, an executor, the project's DAGs."""

    home: Path
    project: Path
    database_url: str
    executor: str = "LocalExecutor"
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    log_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        passwords = self.home / "passwords.json"
        return {
            **tool_env(),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.project / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"),
            "AIRFLOW__API__SECRET_KEY": self._secret("api"),
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            # Pick up DAG files and finished tasks quickly; the defaults suit a server, not a test.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__CORE__PARALLELISM": "4",
            # Workers serve their task logs to the API server on this port (default 8793).
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_port),
            "MTLREC_PROJECT_DIR": str(self.project),
            **self.extra_env,
        }

    def _secret(self, name: str) -> str:
        """A secret shared by all components of this deployment, made once."""
        file = self.home / f".{name}-secret"
        if not file.exists():
            file.write_text(secrets.token_urlsafe(32))
        return file.read_text()

    # --- processes -----------------------------------------------------------------------------

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
        done = subprocess.run(
            ["airflow", "db", "migrate"], env=self.env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"airflow db migrate failed:\n{done.stderr[-4000:]}"

    def start(self, name: str, *command: str) -> subprocess.Popen:
        """Start `airflow COMMAND` as process group `name`, logging to home/NAME.log."""
        with (self.home / f"{name}.log").open("a") as log:
            process = subprocess.Popen(
                ["airflow", *command],
                env=self.env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: killing it takes its children along
            )
        self.processes[name] = process
        return process

    def crash(self, name: str) -> None:
        """SIGKILL the component and every process it started, as a lost machine would: its
        whole tree, task processes included (they run in sessions of their own)."""
        process = self.processes.pop(name)
        tree = _descendants(process.pid)
        _killpg(process.pid, signal.SIGKILL)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        """Stop every component, then kill whatever any of them left behind."""
        for name in list(self.processes):
            process = self.processes.pop(name)
            tree = _descendants(process.pid)
            _killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
            _killpg(process.pid, signal.SIGKILL)
            for pid in tree:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def log(self, name: str, tail: int = 6000) -> str:
        file = self.home / f"{name}.log"
        return file.read_text(errors="replace")[-tail:] if file.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"===== {name}.log\n{self.log(name)}" for name in self._log_names())

    def _log_names(self) -> list[str]:
        return sorted(path.stem for path in self.home.glob("*.log"))

    # --- REST API v2 ---------------------------------------------------------------------------

    def wait_until_up(self, timeout: float = 240) -> None:
        def up() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5):
                    return True
            except (urllib.error.URLError, OSError):
                return False

        wait_for(up, timeout, "the API server to answer", self.logs)

    def token(self) -> str:
        if self._token is None:
            body = json.dumps({"username": USER, "password": PASSWORD}).encode()
            request = urllib.request.Request(
                f"{self.url}/auth/token",
                data=body,
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                self._token = json.loads(response.read())["access_token"]
        return self._token

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.url}/api/v2/{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read()[:2000]!r}") from None

    def wait_for_dag(self, dag_id: str, timeout: float = 240) -> None:
        def parsed() -> bool:
            try:
                self.api("GET", f"dags/{dag_id}")
                return True
            except AssertionError:
                return False

        wait_for(parsed, timeout, f"DAG {dag_id} to be parsed", self.logs)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict) -> str:
        run = self.api("POST", f"dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"dags/{dag_id}/dagRuns/{_quote(run_id)}")["state"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        found = self.api("GET", f"dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in found["task_instances"]}

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        wait_for(
            lambda: self.run_state(dag_id, run_id) in FINISHED,
            timeout,
            f"run {run_id} to finish",
            lambda: f"{self.task_states(dag_id, run_id)}\n{self.logs()}",
        )
        return self.run_state(dag_id, run_id)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        path = f"dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances/{task_id}/logs/{try_number}"
        found = self.api("GET", f"{path}?full_content=true")
        content = found.get("content", found) if isinstance(found, dict) else found
        return json.dumps(content) if not isinstance(content, str) else content


def wait_for(condition, timeout: float, what: str, details=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{details()}")


def _quote(run_id: str) -> str:
    return urllib.request.quote(run_id, safe="")


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (children of each of its threads)."""
    found, stack = [], [pid]
    while stack:
        parent = stack.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = [int(child) for child in (task / "children").read_text().split()]
                found += children
                stack += children
    return found


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
