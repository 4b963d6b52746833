"""Projects and servers for the Airflow tests.

A project here is a committed copy (a DVC experiment is saved relative to a git commit) with
the tiny shop simulated into `data/landing`. Tests that need PostgreSQL, Redis or Chromium
fail in CI (CI=true) when those are missing, and are skipped with the reason elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_project, tool_env, unavailable

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
# Where the browser test leaves its screenshot in the repository (gitignored, like reports/).
SCREENSHOTS = REPO / "reports" / "screenshots"


def make_project(target: Path, **overrides: dict) -> Path:
    """A committed project copy with 1 training epoch and the tiny shop in data/landing."""
    overrides = {"train": {"epochs": 1}, **overrides}
    root = copy_project(target, **overrides)
    git = ["git", "-c", "user.name=mtlrec-tests", "-c", "user.email=tests@mtlrec.invalid"]
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "project under test"], cwd=root, check=True)
    done = subprocess.run(
        ["mtlrec", "simulate"], cwd=root, env=tool_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return root


def airflow_env(home: Path, project: Path, database_url: str | None = None) -> dict[str, str]:
    """The environment of an Airflow CLI or `dag.test()` process for `project`."""
    return {
        **tool_env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url or f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "MTLREC_PROJECT_DIR": str(project),
    }


def airflow_cli(env: dict[str, str], *args: str, timeout: int = 600) -> str:
    done = subprocess.run(
        ["airflow", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stderr[-4000:]}"
    return done.stdout


def dag_test(env: dict[str, str], dag_id: str, conf: dict | None = None, **options: str) -> dict:
    """`dag.test()` of `dag_id` in a child process; its run's state, run id and task states."""
    script = Path(__file__).with_name("dag_test_runner.py")
    args = [sys.executable, str(script), env["AIRFLOW__CORE__DAGS_FOLDER"], dag_id]
    args += [json.dumps(conf or {}), json.dumps(options)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1500)
    output = f"{done.stdout}\n{done.stderr}"
    assert "RESULT " in done.stdout, f"dag.test of {dag_id} crashed:\n{output[-8000:]}"
    result = json.loads(done.stdout.split("RESULT ", 1)[1].splitlines()[0])
    result["log"] = output
    return result


@pytest.fixture(scope="session")
def servers() -> None:
    """PostgreSQL and Redis on 127.0.0.1, reachable."""
    import psycopg
    import redis

    try:
        psycopg.connect(POSTGRES_ADMIN, connect_timeout=3).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except (psycopg.Error, redis.RedisError) as error:
        unavailable(f"PostgreSQL/Redis at 127.0.0.1 unreachable: {error}")


@pytest.fixture
def postgres_database(servers: None) -> Iterator[str]:
    """A fresh PostgreSQL database (SQLAlchemy URL, psycopg 3 driver), dropped afterwards."""
    import psycopg

    name = f"mtlrec_airflow_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
