"""Kill `dvc repro` (SIGKILL to its whole process tree) once inside every stage, at a random
point, on the tiny shop; then rerun it to the end. The result must equal an uninterrupted run,
and nothing kept outside the stages' outputs (quarantine records, model versions, the online
store) may be lost. A copy of the finished workspace then runs the whole pipeline again and
must leave the original byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from mtlrec.registry import Registry
from mtlrec.training.synthetic import write_synthetic_dataset
from mtlrec.training.train import run as train
from tests.conftest import REPO, copy_project, tool_env
from tests.evaluation.test_evaluate import MODEL, TRAIN

pytestmark = pytest.mark.slow
# Every stage of dvc.yaml: a stage added later is killed too.
STAGES = tuple(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
PARAMS = {"train": {"epochs": 6, "patience": 6}, "gate": {"force_promote": True}}
# Outputs that record when or how fast, not what: excluded from the comparison.
VOLATILE = {"metadata.json", "history.jsonl", "production.json"}


@dataclass
class Repro:
    """A `dvc repro` in its own process group, its output read as it comes."""

    root: Path
    process: subprocess.Popen = field(init=False)
    lines: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.process = subprocess.Popen(
            ["dvc", "repro"], cwd=self.root, env=tool_env(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip()))

    def started(self) -> list[str]:
        return [line.split("'")[1] for _, line in self.lines if line.startswith("Running stage")]

    def wait_for_stage(self, stage: str, timeout: float = 300) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if stage in self.started():
                return True
            if self.process.poll() is not None:
                return False
            time.sleep(0.02)
        raise TimeoutError(f"stage {stage} did not start: {self.text()[-2000:]}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)  # dvc and every stage process under it
        self.process.wait(timeout=30)

    def finish(self, timeout: float = 900) -> str:
        assert self.process.wait(timeout=timeout) == 0, self.text()[-4000:]
        time.sleep(0.2)
        return self.text()

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def durations(self) -> dict[str, float]:
        starts = [(t, line.split("'")[1]) for t, line in self.lines if "Running stage" in line]
        ends = [t for t, _ in starts[1:]] + [self.lines[-1][0]]
        return {stage: end - t for (t, stage), end in zip(starts, ends, strict=True)}


def _tree(folder: Path, skip: set[str] = frozenset()) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip and ".dvc/tmp" not in str(p)
    }


def _online_values(root: Path) -> set[tuple]:
    """Every (table, entity, feature, value, event time) of the SQLite online store."""
    with sqlite3.connect(root / "data" / "feast" / "online_store.db") as db:
        tables = [row[0] for row in db.execute("select name from sqlite_master where type='table'")]
        return {
            (table, *row)
            for table in tables
            for row in db.execute(f"select entity_key, feature_name, value, event_ts from {table}")
        }


def _outputs(root: Path) -> dict[str, str]:
    """Every stage output's hash as dvc.lock records it (materialize.json included)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {
        f"{stage}:{out['path']}": out.get("md5", "")
        for stage, entry in lock.items()
        for out in entry.get("outs", [])
    }


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An older production model (trained elsewhere: the gate cannot score it, and forces)."""
    root = tmp_path_factory.mktemp("champion")
    data = write_synthetic_dataset(root / "data", 400, 60, seed=3)
    train(MODEL, TRAIN.model_copy(update={"epochs": 1}), data, root / "model", root / "cache")
    return root / "model"


def _seeded(root: Path, champion: Path) -> Path:
    Registry(root / "models" / "registry").promote(champion, {"run_id": "older"}, "seed")
    record = root / "data" / "quarantine" / "resolved" / "items" / "2025-12-31" / "t0"
    record.mkdir(parents=True)
    (record / "result.json").write_text('{"status": "quarantined"}')
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, champion: Path) -> tuple[Path, dict]:
    root = _seeded(copy_project(tmp_path_factory.mktemp("reference"), **PARAMS), champion)
    repro = Repro(root)
    repro.finish()
    return root, repro.durations()


@pytest.fixture(scope="module")
def faulted(
    tmp_path_factory: pytest.TempPathFactory, champion: Path, reference: tuple[Path, dict]
) -> tuple[Path, dict[str, dict[str, str]], dict[str, str], str]:
    """The same pipeline, killed once inside every stage; then run to the end."""
    _, durations = reference
    root = _seeded(copy_project(tmp_path_factory.mktemp("faulted"), **PARAMS), champion)
    kept = {folder: _tree(root / folder) for folder in ("models/registry/v1", "data/quarantine")}
    kept["history"] = {"lines": (root / "models" / "registry" / "history.jsonl").read_text()}
    rng, killed_in, logs = random.Random(12), {}, []
    assert sorted(durations) == sorted(STAGES), durations  # the reference ran every stage
    for stage in durations:  # in the order DVC runs them
        repro = Repro(root)
        logs.append(repro)
        if not repro.wait_for_stage(stage):  # already done by an earlier rerun
            killed_in[stage] = "not rerun"
            continue
        if stage == "train":  # mid-epoch: after the first checkpoint, before the last epoch
            checkpoints = root / "data" / "checkpoints" / "train"
            while not list(checkpoints.glob("*/epoch_001")):
                time.sleep(0.005)
        else:
            # At most 0.4 of the reference's time: a stage can run faster than in the
            # reference (evaluate took 0.7 of it once, and the kill hit `baselines`).
            time.sleep(rng.uniform(0.05, 0.4) * durations[stage])
        killed_in[stage] = repro.started()[-1]
        repro.kill()
    last = Repro(root)
    last.finish()
    return root, kept, killed_in, "\n".join(run.text() for run in [*logs, last])


def test_every_stage_was_killed_while_it_ran(faulted: tuple) -> None:
    _, _, killed_in, _ = faulted
    assert killed_in == {stage: stage for stage in STAGES}, killed_in


def test_the_rerun_resumes_training_and_ends_as_an_uninterrupted_run(
    faulted: tuple, reference: tuple[Path, dict]
) -> None:
    root, _, _, log = faulted
    assert "resumed after epoch" in log, log[-3000:]
    assert _outputs(root) == _outputs(reference[0])
    for folder in ("models/challenger", "models/baselines", "metrics"):
        assert _tree(root / folder) == _tree(reference[0] / folder), folder


def test_nothing_kept_outside_the_outputs_is_lost(
    faulted: tuple, reference: tuple[Path, dict]
) -> None:
    root, kept, _, _ = faulted
    registry = Registry(root / "models" / "registry")
    assert registry.versions() == ["v1", "v2"] and registry.production() == "v2"
    history = (root / "models" / "registry" / "history.jsonl").read_text()
    assert history.startswith(kept.pop("history")["lines"])  # appended to, never rewritten
    for folder, before in kept.items():  # v1 and the quarantine record, byte for byte
        now = _tree(root / folder)
        assert {name: now.get(name) for name in before} == before, folder
    assert _tree(root / "models" / "registry", VOLATILE) == _tree(
        reference[0] / "models" / "registry", VOLATILE
    )
    assert _online_values(root) == _online_values(reference[0])


def test_a_copy_of_the_workspace_leaves_the_original_alone(faulted: tuple, tmp_path: Path) -> None:
    original = faulted[0]
    before = _tree(original)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy, symlinks=True)  # what `cp -a` does
    done = subprocess.run(
        ["dvc", "repro", "--force"], cwd=copy, env=tool_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (
        "applied in another workspace" in done.stdout + done.stderr
        or (copy / "data" / "feast" / "registry.db.foreign").exists()
    )
    assert _tree(original) == before
    assert _online_values(copy) == _online_values(original)
