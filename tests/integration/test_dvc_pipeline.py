"""`dvc repro` of the whole pipeline on the tiny shop, in a fresh copy of the project."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import copy_project, tool_env

pytestmark = pytest.mark.slow


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["dvc", *args], cwd=root, env=tool_env(), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("dvc"), train={"epochs": 2})
    _dvc(root, "repro")
    return root


def test_repro_writes_metrics_with_oracle_beside_each(reproduced: Path) -> None:
    report = json.loads((reproduced / "metrics" / "challenger.json").read_text())
    for task, metric in (
        ("ctr", "auc"),
        ("cvr", "auc"),
        ("ctcvr", "auc"),
        ("relevance", "ndcg@10"),
    ):
        assert 0.0 <= report[task][metric] <= 1.0, (task, report[task])
        assert 0.0 <= report[task][f"oracle_{metric}"] <= 1.0
    assert report["ctr"]["oracle_auc"] > 0.6  # the simulator's truth carries signal
    assert (reproduced / "models" / "challenger" / "model.safetensors").is_file()
    assert (reproduced / "reports" / "data_docs" / "index.html").is_file()


def test_second_repro_changes_nothing_within_seconds(reproduced: Path) -> None:
    lock_before = (reproduced / "dvc.lock").read_text()
    started = time.monotonic()
    done = _dvc(reproduced, "repro")
    elapsed = time.monotonic() - started
    assert "Data and pipelines are up to date." in done.stdout
    assert (reproduced / "dvc.lock").read_text() == lock_before
    assert elapsed < 60, f"a no-op repro took {elapsed:.1f}s"


def test_dvc_metrics_show_lists_the_metrics(reproduced: Path) -> None:
    done = _dvc(reproduced, "metrics", "show", "--json")
    shown = json.loads(done.stdout)
    assert any("metrics/challenger.json" in json.dumps(value) for value in shown.values())
