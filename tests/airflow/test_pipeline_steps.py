"""The helpers the DAG tasks call in `mtlrec.pipeline`, on tiny inline fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from mtlrec import pipeline
from mtlrec.config import ConfigError
from mtlrec.registry import Registry
from tests.conftest import REPO, run_dvc, tool_env

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "run_id",
    [
        "manual__2026-11-25T21:00:12.856855+00:00",
        "asset_triggered__2026-01-02T03:04:05+00:00",
        "scheduled__2026-01-02T00:00:00+00:00",
        "my run/with..odd@{chars}",
    ],
)
def test_experiment_names_are_valid_git_refs(run_id: str) -> None:
    name = pipeline.experiment_name(run_id)
    check = subprocess.run(["git", "check-ref-format", f"refs/exps/ab/cd/{name}"])
    assert check.returncode == 0, name
    assert name and set(name) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
    )


def test_experiment_names_keep_the_run_apart() -> None:
    first = pipeline.experiment_name("manual__2026-11-25T21:00:12.856855+00:00")
    second = pipeline.experiment_name("manual__2026-11-25T21:00:13.000001+00:00")
    assert first == "manual__2026-11-25T21-00-12-856855-00-00"
    assert first != second


def test_incremental_window_reaches_back_by_the_overlap() -> None:
    interval = (datetime(2026, 1, 4, 1, tzinfo=UTC), datetime(2026, 1, 4, 2, tzinfo=UTC))
    start, end = pipeline.incremental_window(*interval, timedelta(hours=2), now=NOW)
    assert (start, end) == (datetime(2026, 1, 3, 23, tzinfo=UTC), interval[1])
    late = pipeline.incremental_window(
        NOW - timedelta(hours=1), NOW + timedelta(hours=1), timedelta(0), now=NOW
    )
    assert late[1] == NOW  # Feast must never record a future end


@pytest.fixture
def params_project(tmp_path: Path) -> Path:
    shutil.copy2(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_set_params_writes_the_form_and_keeps_comments(params_project: Path) -> None:
    form = {"bottom": "mmoe", "epochs": 5, "loss_weighting": "uncertainty", "force_promote": True}
    written = pipeline.set_params(params_project, {**form, "window_start": None})
    assert written == {
        "model.bottom": "mmoe",
        "train.epochs": 5,
        "train.loss_weighting": "uncertainty",
        "gate.force_promote": True,
    }
    text = (params_project / "params.yaml").read_text()
    raw = yaml.safe_load(text)
    assert raw["model"]["bottom"] == "mmoe" and raw["train"]["epochs"] == 5
    assert raw["gate"]["force_promote"] is True
    assert "# shared_bottom | mmoe | ple" in text  # DVC's editor keeps the comments


def test_set_params_leaves_an_unchanged_file_alone(params_project: Path) -> None:
    before = (params_project / "params.yaml").read_bytes()
    raw = yaml.safe_load(before)
    pipeline.set_params(params_project, {"bottom": raw["model"]["bottom"]})
    assert (params_project / "params.yaml").read_bytes() == before


def test_a_runs_values_are_that_runs_only(params_project: Path) -> None:
    """The form's values are in params.yaml while the run's stages read it; the form's
    defaults (and so the next run's) stay the file as committed; the teardown restores it
    byte for byte, also after a retried set_params."""
    from mtlrec.layout import Layout

    layout = Layout(params_project)
    committed = layout.params.read_bytes()
    epochs = yaml.safe_load(committed)["train"]["epochs"]
    assert layout.form_defaults == layout.params
    pipeline.set_params(params_project, {"epochs": epochs + 1})
    assert yaml.safe_load(layout.params.read_text())["train"]["epochs"] == epochs + 1
    assert layout.form_defaults.read_bytes() == committed
    pipeline.set_params(params_project, {"epochs": epochs + 2})  # a retry, other values
    assert layout.form_defaults.read_bytes() == committed
    assert pipeline.restore_params(params_project) is True
    assert layout.params.read_bytes() == committed and layout.form_defaults == layout.params
    assert pipeline.restore_params(params_project) is False  # nothing left to restore


@pytest.mark.parametrize("form", [{"bottom": "transformer"}, {"epochs": 0}])
def test_bad_form_values_fail_and_change_nothing(params_project: Path, form: dict) -> None:
    before = (params_project / "params.yaml").read_bytes()
    with pytest.raises(ConfigError, match="rejected"):
        pipeline.set_params(params_project, form)
    assert (params_project / "params.yaml").read_bytes() == before
    assert pipeline.restore_params(params_project) is False


def _batch(path: Path, content: bytes = b"parquet") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_pending_batches_are_the_unfiled_ones(tmp_path: Path) -> None:
    landing = tmp_path / "data" / "landing"
    filed = _batch(landing / "users" / "2026-01-01.parquet")
    copy = _batch(tmp_path / "data" / "validated" / "users" / filed.name)
    shutil.copy2(filed, copy)
    os.utime(copy, (2_000_000, 2_000_000))  # DVC restores a cached output with a new mtime
    rejected = _batch(landing / "impressions" / "2026-01-01.parquet")
    verdict = _batch(
        tmp_path / "data" / "quarantine" / "impressions" / "2026-01-01" / "result.json"
    )
    os.utime(rejected, (1_000_000, 1_000_000))  # the verdict is newer than the batch
    _batch(landing / "impressions" / "2026-01-02.parquet")
    assert verdict.is_file()
    assert pipeline.pending_batches(tmp_path) == ["impressions/2026-01-02.parquet"]
    _batch(filed, b"a corrected batch")  # re-landed: validation must look again
    assert "users/2026-01-01.parquet" in pipeline.pending_batches(tmp_path)


def test_uncached_outputs_include_the_metrics() -> None:
    outputs = pipeline.uncached_outputs(REPO)
    assert {"metrics/challenger.json", "metrics/gate.json"} <= set(outputs)


def _register(registry: Path, version: str, run_id: str | None) -> None:
    _batch(registry / version / "metadata.json", json.dumps({"run_id": run_id}).encode())


def test_registry_lookups_by_run(tmp_path: Path) -> None:
    registry = tmp_path / "models" / "registry"
    assert pipeline.production(tmp_path) is None
    _register(registry, "v1", "manual__a")
    _register(registry, "v2", "manual__b")
    (registry / "production.json").write_text(json.dumps({"version": "v2", "history": []}))
    assert Registry(registry).version_of_run("manual__b") == "v2"
    assert Registry(registry).version_of_run("manual__c") is None
    assert pipeline.production(tmp_path) == {"version": "v2", "run_id": "manual__b"}


def test_record_run_needs_a_git_commit(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    with pytest.raises(RuntimeError, match="no git commit"):
        pipeline.record_run(tmp_path, "manual__x", ["train"])


RAN = """Running stage 'validate':
> mtlrec validate --landing data/landing --out data/validated
Loading weights: 100%|##########| 103/103 [00:00<00:00, 18328.95it/s]
validated 18 batches; validation report: /w/reports/data_docs/index.html
WARNING: 'data/feedback' is empty.
Updating lock file 'dvc.lock'

To track the changes with git, run:

\tgit add dvc.lock
Use `dvc push` to send your updates to remote storage.
"""


def test_a_stage_task_logs_one_line_of_outcome() -> None:
    """INFO gets what the stage did and its result line, not DVC's chatter."""
    ran = pipeline.stage_outcome("validate", RAN, 16.94)
    assert ran == (
        "validate: ran in 16.9 s: validated 18 batches; "
        "validation report: /w/reports/data_docs/index.html"
    )
    skipped = "Stage 'featurize' didn't change, skipping\nData and pipelines are up to date.\n"
    assert (
        pipeline.stage_outcome("featurize", skipped, 1.2) == "featurize: unchanged, skipped (1.2 s)"
    )
    cached = "Stage 'train' is cached - skipping run, checking out outputs\n"
    assert pipeline.stage_outcome("train", cached, 3.0) == (
        "train: restored from DVC's run cache (3.0 s)"
    )
    assert pipeline.stage_outcome("index", "Running stage 'index':\n", 2.0) == "index: ran in 2.0 s"


CUT_SHORT = b'{"write": {"out.txt": {"pid": 4242, "cm'  # a DVC killed while rewriting it


@pytest.fixture
def dvc_project(tmp_path: Path) -> Path:
    """A DVC project of one stage, its rwlock file cut short as a killed `dvc repro` leaves it."""
    run_dvc(tmp_path, "init", "--no-scm", "-q")
    stage = {"cmd": "echo made > out.txt", "outs": ["out.txt"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"make": stage}}))
    (tmp_path / pipeline.DVC_RWLOCK).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / pipeline.DVC_RWLOCK).write_bytes(CUT_SHORT)
    return tmp_path


def test_dvc_alone_fails_on_a_cut_short_rwlock(dvc_project: Path) -> None:
    """Why the task sets the file aside: DVC 3 does not recover from it by itself (if a release
    does, this fails and the workaround can go)."""
    done = subprocess.run(["dvc", "repro", "make"], cwd=dvc_project, env=tool_env(),
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode != 0
    assert "rwlock" in done.stderr and "corrupted" in done.stderr, done.stderr
    assert not (dvc_project / "out.txt").exists()


def test_a_task_runs_after_a_killed_dvc_left_its_rwlock_cut_short(
    dvc_project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="mtlrec.pipeline"):
        pipeline.run_stage(dvc_project, "make")
    assert (dvc_project / "out.txt").read_text() == "made\n"
    aside = list((dvc_project / ".dvc" / "tmp").glob("rwlock.broken-*"))
    assert [path.read_bytes() for path in aside] == [CUT_SHORT]  # kept, not deleted
    assert aside[0].name in caplog.text
    json.loads((dvc_project / pipeline.DVC_RWLOCK).read_text())  # DVC's own new one
    pipeline.run_stage(dvc_project, "make")  # and the next command leaves that one alone
    assert len(list((dvc_project / ".dvc" / "tmp").glob("rwlock.broken-*"))) == 1


def test_a_whole_or_missing_rwlock_is_left_alone(tmp_path: Path) -> None:
    assert pipeline.set_aside_broken_rwlock(tmp_path) is None
    whole = b'{"read": {"data/x": [{"pid": 1, "cmd": "dvc repro"}]}}'
    (tmp_path / pipeline.DVC_RWLOCK).parent.mkdir(parents=True)
    (tmp_path / pipeline.DVC_RWLOCK).write_bytes(whole)
    assert pipeline.set_aside_broken_rwlock(tmp_path) is None
    assert (tmp_path / pipeline.DVC_RWLOCK).read_bytes() == whole
    assert list((tmp_path / pipeline.DVC_RWLOCK).parent.iterdir()) == [
        tmp_path / pipeline.DVC_RWLOCK
    ]
