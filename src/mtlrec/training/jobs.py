"""Several models of one training set trained at once, one process each.

The `train` stage trains the multi-task challenger and the single-task baselines
(`evaluation/baselines.py` scores them): four models of the same data and params. On a 2-core
machine, one model per process on each core beats both training them one after the other and
data-parallel training of each (two ranks of one model gain ~1.2x: every step all-reduces and
runs half batches; two models side by side gain ~2x). The biggest job starts first, the small
ones share the other core. Each model is seeded as when trained alone, so its weights do not
depend on how many processes ran or in which order.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mtlrec.config import ModelConfig, TrainConfig
from mtlrec.model.text import build_text_encoder
from mtlrec.training import train
from mtlrec.training.data import TrainingData, load_training_data

# The rows each single-task model trains on, relatively: ctr every impression; relevance the
# judgements; cvr the clicked impressions. The challenger (every row, every task) is the biggest.
BASELINE_COST = {"ctr": 3, "relevance": 2, "cvr": 1}
CHALLENGER_COST = 10


@dataclass(frozen=True)
class Job:
    """One model to train: `train.run`'s arguments besides the shared data and params."""

    model: ModelConfig
    out: Path
    checkpoints: Path
    label: str = ""  # prefixes the model's log lines ("" for the challenger)
    timings: Path | None = None
    cost: int = CHALLENGER_COST  # relative: the biggest job starts first
    train: TrainConfig | None = None  # its own training params (None: the shared ones)


def single_task(model: ModelConfig, task: str) -> ModelConfig:
    """The challenger's architecture on one task (nothing to read from: no read-only task)."""
    return model.model_copy(update={"tasks": (task,), "read_only_tasks": ()})


def baseline_jobs(
    tasks: tuple[str, ...],
    model: ModelConfig,
    models: Path,
    checkpoints: Path | None = None,
    train_cfg: TrainConfig | None = None,
) -> list[Job]:
    """A single-task model per task in `models/<task>`, trained with `train_cfg` (None: the
    shared params). Checkpoints default to a folder beside `models`, outside the stage's
    outputs (which DVC deletes before a rerun)."""
    root = Path(checkpoints) if checkpoints else models.with_name(f".{models.name}.ckpt")
    return [
        Job(
            single_task(model, task),
            Path(models) / task,
            root / task,
            label=f"baseline {task}",
            cost=BASELINE_COST.get(task, 0),
            train=train_cfg,
        )
        for task in tasks
    ]


def train_all(
    jobs: list[Job], train_cfg: TrainConfig, data: Path, cache: Path, workers: int
) -> list[train.TrainResult]:
    """Train every job, `workers` at a time (in this process for 1); the results in the order
    of `jobs`. `train_cfg` trains each job that has no params of its own. A failed job fails
    the call with its own error.

    With several workers the biggest job trains here, on the data this process loads first,
    and the others in `workers - 1` spawned processes: jobs racing to encode a missing text
    would cache whichever batch's bits came first (see `train.run`) and the models would differ
    run to run, so the biggest job (the challenger: every task's rows, so every text the
    others read) fills the cache before any other starts, and its data is not loaded twice."""
    order = sorted(range(len(jobs)), key=lambda i: jobs[i].cost, reverse=True)
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        done = {i: _train(jobs[i], train_cfg, data, cache) for i in order}
        return [done[i] for i in range(len(jobs))]
    first, rest = order[0], order[1:]
    widest = jobs[first].model
    encoder = build_text_encoder(widest.text) if widest.text.finetune_layers else None
    loaded = load_training_data(widest, data, cache, encoder)
    context = multiprocessing.get_context("spawn")  # no fork of a process with OpenMP threads
    pool = ProcessPoolExecutor(workers - 1, mp_context=context)
    try:
        futures = {i: pool.submit(_train, jobs[i], train_cfg, data, cache) for i in rest}
        done = {first: _train(jobs[first], train_cfg, data, cache, loaded)}
        done |= {i: future.result() for i, future in futures.items()}
    finally:  # a failure does not wait for the jobs that have not started
        pool.shutdown(wait=True, cancel_futures=True)
    return [done[i] for i in range(len(jobs))]


def _train(
    job: Job,
    train_cfg: TrainConfig,
    data: Path,
    cache: Path,
    loaded: TrainingData | None = None,
) -> train.TrainResult:
    result = train.run(
        job.model,
        job.train or train_cfg,
        data,
        job.out,
        cache,
        checkpoints=job.checkpoints,
        timings=job.timings,
        label=job.label,
        data=loaded,
    )
    print(f"{job.label + ': ' if job.label else ''}{result}", flush=True)
    return result
