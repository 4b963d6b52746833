"""A real `mtlrec serve` (uvicorn, its own process) on the session's tiny pipeline workspace."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.airflow.services import free_port
from tests.conftest import tool_env


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def post(self, body: object, **kwargs: object) -> httpx.Response:
        return httpx.post(f"{self.url}/rank", json=body, timeout=30, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=30)

    def logged(self) -> str:
        return self.log.read_text()


@contextmanager
def serving(
    workspace: Path, *args: str, env: dict[str, str] | None = None, ready: bool = True
) -> Iterator[Server]:
    """`mtlrec serve` in `workspace` on a free port until the block ends (SIGTERM)."""
    port = free_port()
    log = workspace / "reports" / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = ["mtlrec", "serve", "--port", str(port), *args]
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=workspace, env=env or tool_env(), stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait(server, ready)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def _wait(server: Server, ready: bool, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"mtlrec serve exited:\n{server.logged()[-3000:]}")
        try:
            status = server.get("/readyz").status_code
            if status == 200 or (not ready and status == 503):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"mtlrec serve not ready:\n{server.logged()[-3000:]}")


@pytest.fixture(scope="module")
def server(pipeline_run: Path) -> Iterator[Server]:
    with serving(pipeline_run) as running:
        yield running


@pytest.fixture(scope="module")
def catalogue(pipeline_run: Path) -> dict[str, list]:
    """Known users, items and judged queries of the workspace."""
    features = pipeline_run / "data" / "features"
    judged = pd.read_parquet(pipeline_run / "data" / "validated" / "judgments")
    return {
        "users": pd.read_parquet(features / "user_profile.parquet")["user_id"].tolist(),
        "items": pd.read_parquet(features / "item_profile.parquet")["item_id"].tolist(),
        "queries": sorted(judged["query"].unique()),
    }
