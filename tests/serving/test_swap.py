"""The service follows the production alias: a steady stream of requests through a promotion
and a rollback all succeed, each answered wholly by one version; a broken version is refused
and the old one keeps serving, with the reason on /readyz and in the log."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mtlrec.config import load_params
from mtlrec.registry import Registry
from mtlrec.training.train import run as train
from tests.serving.conftest import Server, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(pipeline_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the workspace's registry (v1 in production) with a second model as v2."""
    root = tmp_path_factory.mktemp("swap")
    shutil.copytree(pipeline_run / "models" / "registry", root / "registry")
    params = load_params(pipeline_run / "params.yaml")
    other = params.train.model_copy(update={"seed": 1, "epochs": 1})
    data, cache = pipeline_run / "data" / "training", pipeline_run / "data" / "cache"
    train(params.model, other, data, root / "second", cache, checkpoints=root / "ckpt")
    assert Registry(root / "registry").register(root / "second", {"run_id": "second"}) == "v2"
    return root / "registry"


def _until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


class Stream:
    """Requests one after another from a thread, every answer kept."""

    def __init__(self, server: Server, body: dict) -> None:
        self.server, self.body = server, body
        self.answers: list[tuple[int, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            response = self.server.post(self.body)
            self.answers.append((response.status_code, response.json()))

    def versions(self) -> set[str]:
        return {answer.get("version") for _, answer in self.answers}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_promotion_and_rollback_swap_without_a_failed_request(
    pipeline_run: Path, registry: Path, catalogue: dict
) -> None:
    body = {
        "user_id": catalogue["users"][0],
        "scenario": "search",
        "query": catalogue["queries"][0],
        "candidates": catalogue["items"][:30],
        "k": 30,
    }
    with serving(pipeline_run, "--registry", str(registry)) as server:
        stream = Stream(server, body)
        try:
            _until(lambda: len(stream.answers) >= 5)
            Registry(registry).set_production("v2", "swap test")
            _until(lambda: "v2" in stream.versions())
            metrics = server.get("/metrics").text  # the serving version only
            assert 'mtlrec_model_version{version="v2"} 1.0' in metrics, metrics
            assert 'version="v1"' not in metrics, metrics
            count = len(stream.answers)
            _until(lambda: len(stream.answers) >= count + 5)
            Registry(registry).rollback()
            _until(lambda: stream.answers[-1][1].get("version") == "v1")
            count = len(stream.answers)
            _until(lambda: len(stream.answers) >= count + 5)
        finally:
            stream.stop()
        assert "serving v2 (was v1)" in server.logged() and "serving v1 (was v2)" in server.logged()
        assert "multi-process mode" not in server.logged()  # prometheus_client warned at swaps
    statuses = {status for status, _ in stream.answers}
    assert statuses == {200}, statuses
    by_version: dict[str, list[dict]] = {}
    for _, answer in stream.answers:
        by_version.setdefault(answer["version"], []).append(answer["items"])
    assert set(by_version) == {"v1", "v2"}
    assert by_version["v1"][0] != by_version["v2"][0]  # two models, two answers
    for version, answers in by_version.items():  # each answer is one version's, whole
        assert all(items == answers[0] for items in answers), version


def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(
    pipeline_run: Path, registry: Path, catalogue: dict
) -> None:
    body = {"user_id": catalogue["users"][0], "scenario": "feed", "k": 3}
    with serving(pipeline_run, "--registry", str(registry)) as server:
        assert server.post(body).json()["version"] == "v1"
        weights = registry / "v2" / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])  # truncated on disk
        # Another tool moves the alias without the registry's checks.
        (registry / "production.json").write_text(json.dumps({"version": "v2"}))
        _until(lambda: server.get("/readyz").json()["last_error"] is not None)
        ready = server.get("/readyz").json()
        assert ready["ready"] and ready["version"] == "v1"
        assert "v2/model.safetensors does not match its checksum" in ready["last_error"]
        assert server.post(body).json()["version"] == "v1"
        (registry / "production.json").write_text(json.dumps({"version": "v9"}))
        _until(lambda: "v9" in (server.get("/readyz").json()["last_error"] or ""))
        assert server.post(body).status_code == 200
        assert "still serving v1" in server.logged()
        assert 'mtlrec_model_loads_total{outcome="refused"}' in server.get("/metrics").text
