"""`dvc repro` of the whole pipeline on the tiny shop, in a fresh copy of the project."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_project, tiny_raw_params, tool_env

pytestmark = pytest.mark.slow


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["dvc", *args], cwd=root, env=tool_env(), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def reproduced(pipeline_run: Path) -> Path:
    return pipeline_run


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


def test_repro_ends_with_the_per_task_table_of_the_metric_files(reproduced: Path) -> None:
    """reports/metrics.md (the `report` stage) shows the challenger's and the baselines'
    numbers as the metric files hold them, one row per task."""
    text = (reproduced / "reports" / "metrics.md").read_text()
    comparison = json.loads((reproduced / "metrics" / "comparison.json").read_text())
    gate = json.loads((reproduced / "metrics" / "gate.json").read_text())
    assert gate["metrics"] == {
        "challenger": "metrics/challenger.json",
        "champion": "metrics/champion.json",
    }
    assert "challenger" not in gate and "champion" not in gate  # referred to, not copied
    headline = text.split("## Every metric")[0]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in headline.splitlines()]
    rows = {(row[0], row[1]): row[2:5] for row in cells if len(row) == 7}
    for task, metric in (("ctr", "auc"), ("cvr", "auc"), ("ctcvr", "auc")):
        row = comparison[task][metric]
        expected = [f"{row[k]:.4f}" for k in ("multi_task", "single_task", "oracle")]
        assert rows[(task, metric)] == expected, (task, row)
    assert "**Promoted** as v1" in headline


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


def _landed(root: Path) -> dict[str, bytes]:
    folders = [root / "data" / "landing", root / "data" / "ground_truth"]
    return {str(p.relative_to(root)): p.read_bytes() for f in folders for p in f.rglob("*.parquet")}


def test_switching_the_preset_reruns_land_and_changes_the_data(tmp_path: Path) -> None:
    """DVC's run cache drops param keys named `size` (iterative/dvc#10296): under that name a
    switch of the shop's size restored the other size's data and `dvc status` saw nothing."""
    raw = tiny_raw_params()
    presets = {**raw["simulate"]["presets"], "tiny_b": {**raw["simulate"]["presets"]["tiny"]}}
    presets["tiny_b"]["n_users"] = 50
    root = copy_project(tmp_path, simulate={"presets": presets})
    _dvc(root, "repro", "land")
    first = _landed(root)
    for preset, expect_same in (("tiny_b", False), ("tiny", True)):
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["simulate"]["preset"] = preset
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        status = _dvc(root, "status", "land").stdout
        assert "simulate.preset" in status or "simulate" in status, status
        _dvc(root, "repro", "land")
        assert (_landed(root) == first) is expect_same, preset


def test_a_failing_source_under_dvc_repro_keeps_the_old_landing_zone(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    _dvc(root, "repro", "land")
    before = _landed(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["source"] = {"kind": "homedepot", "path": "sources/broken.csv"}
    (root / "sources" / "broken.csv").write_bytes("id,product_uid\n".encode("utf-16"))
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run(
        ["dvc", "repro", "land"], cwd=root, env=tool_env(), capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "broken.csv: UTF-16" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert _landed(root) == before  # DVC did not delete it first, land did not either
