"""Several models trained at once (the challenger and the baselines), one process each."""

import json
from pathlib import Path

import pytest
import torch

from mtlrec.model.predict import load
from mtlrec.training import jobs
from mtlrec.training.train import SUMMARY_FILE
from tests.evaluation.test_evaluate import MODEL, TRAIN, workspace  # noqa: F401 (fixture)


def test_jobs_in_parallel_processes_match_sequential_ones(
    workspace: dict[str, Path],  # noqa: F811
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Each model is seeded as when trained alone: two worker processes give the same weights
    as one after the other, and the results come back in the jobs' order."""
    w = workspace
    states = {}
    for workers in (1, 2):
        models = tmp_path / f"models{workers}"
        work = [jobs.Job(MODEL, models / "multi", tmp_path / f"ckpt{workers}" / "multi")]
        work += jobs.baseline_jobs(("cvr", "ctr"), MODEL, models, tmp_path / f"ckpt{workers}")
        results = jobs.train_all(work, TRAIN, w["data"], w["cache"], workers=workers)
        assert [r.out_dir for r in results] == [job.out for job in work]
        states[workers] = {job.out.name: load(job.out).model.state_dict() for job in work}
    assert states[1].keys() == {"multi", "ctr", "cvr"}
    for model, state in states[1].items():
        assert state.keys() == states[2][model].keys()
        for name, value in state.items():
            assert torch.equal(value, states[2][model][name]), (model, name)
    log = capfd.readouterr().out  # the spawned workers' lines name their model
    assert "baseline ctr: epoch 1/" in log and "baseline cvr: trained" in log


def test_a_baseline_is_the_challenger_s_architecture_on_one_task(tmp_path: Path) -> None:
    work = jobs.baseline_jobs(("ctr", "relevance"), MODEL, tmp_path / "models")
    assert [job.model.tasks for job in work] == [("ctr",), ("relevance",)]
    assert all(job.model.read_only_tasks == () for job in work)
    assert all(job.model.bottom == MODEL.bottom for job in work)
    assert [job.out for job in work] == [tmp_path / "models" / t for t in ("ctr", "relevance")]
    assert work[0].checkpoints == tmp_path / ".models.ckpt" / "ctr"  # outside the outputs
    assert work[0].cost > work[1].cost  # ctr (every impression) starts first


def test_a_job_with_its_own_params_trains_with_them(
    workspace: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The baselines' own batch and rate (`baselines.batch_size`, `.lr`) reach their training;
    the challenger keeps the shared params."""
    w = workspace
    own = TRAIN.model_copy(update={"batch_size": TRAIN.batch_size * 2, "lr": TRAIN.lr / 2})
    work = [jobs.Job(MODEL, tmp_path / "models" / "multi", tmp_path / "ckpt" / "multi")]
    work += jobs.baseline_jobs(("ctr",), MODEL, tmp_path / "models", tmp_path / "ckpt", own)
    jobs.train_all(work, TRAIN, w["data"], w["cache"], workers=1)
    trained = {}
    for job in work:
        summary = json.loads((job.out / SUMMARY_FILE).read_text())
        trained[job.out.name] = (summary["batch_size"], summary["lr"])
    assert trained == {"multi": (TRAIN.batch_size, TRAIN.lr), "ctr": (own.batch_size, own.lr)}
