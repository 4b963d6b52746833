"""Single-task baselines: the multi-task model's architecture, trained on one task each.

Same features, same params (`model`, `train`), same train/valid/test splits; only `tasks` differs:
- `ctr`: click on every impression;
- `cvr`: purchase given click, trained on the clicked impressions only: the classic CVR model,
  whose training rows are a biased sample of the impressions it scores (sample selection bias,
  the problem ESMM solves by training p_ctr * p_cvr on every impression);
- `relevance`: the rater grades.
The baselines' ctcvr is p_ctr of the ctr baseline times p_cvr of the cvr baseline. They are
scored by the same metric code as the challenger, and `comparison.json` sets multi-task,
single-task and oracle side by side, per task and metric.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mtlrec.config import BaselinesConfig, EvaluateConfig, ModelConfig, TrainConfig
from mtlrec.evaluation.evaluate import task_metrics, with_truth, write_metrics
from mtlrec.evaluation.metrics import Metrics, fmt
from mtlrec.features.dataset import labelled_tasks
from mtlrec.model.predict import predict
from mtlrec.training import distributed, train

COUNTS = ("rows", "positives")  # sizes, not metrics: left out of the comparison
# Rows each baseline trains on, relatively: ctr every impression; relevance the judgements; cvr
# the clicked impressions.
TRAIN_COST = {"ctr": 3, "relevance": 2, "cvr": 1}
Comparison = dict[str, dict[str, dict[str, float | None]]]


@dataclass(frozen=True)
class BaselinePaths:
    data: Path
    truth: Path | None
    cache: Path
    models: Path  # one model folder per baseline task
    challenger_metrics: Path  # the multi-task model's metrics (evaluate stage)
    out: Path  # baselines' metrics
    comparison: Path
    checkpoints: Path | None = None  # resumable checkpoints, one folder per baseline task


@dataclass(frozen=True)
class BaselinesOutcome:
    metrics: Metrics
    comparison: Comparison

    def __str__(self) -> str:
        return comparison_table(self.comparison)


def run(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    evaluation: EvaluateConfig,
    cfg: BaselinesConfig,
    paths: BaselinePaths,
) -> BaselinesOutcome:
    """Train every baseline of `cfg.tasks` that the data has labels for, score them on the
    test split, compare."""
    tasks = tuple(task for task in cfg.tasks if task in labelled_tasks(paths.data))
    train_all(tasks, model_cfg, train_cfg, paths)
    scored = score_baselines(tasks, paths)
    report = task_metrics(scored, evaluation.ndcg_k)
    write_metrics(report, paths.out)
    challenger: Metrics = json.loads(paths.challenger_metrics.read_text())
    comparison = compare(challenger, report)
    paths.comparison.parent.mkdir(parents=True, exist_ok=True)
    paths.comparison.write_text(json.dumps(comparison, indent=2, sort_keys=True) + "\n")
    return BaselinesOutcome(report, comparison)


def train_all(
    tasks: tuple[str, ...],
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    paths: BaselinePaths,
    workers: int | None = None,
) -> None:
    """One model per task, in `workers` parallel processes (default: `worker_count`).

    The training loop runs on one or two threads; more threads in one process spin-wait on a busy
    machine, while separate processes use the cores without waiting on each other. The biggest
    task (ctr, every impression) starts first so the smaller ones share the other core. Each
    model is seeded as in a sequential run, so the models are the same either way.
    """
    jobs = sorted(tasks, key=lambda task: TRAIN_COST.get(task, 0), reverse=True)
    workers = min(len(jobs), worker_count(paths.data) if workers is None else workers)
    if workers <= 1:
        for task in jobs:
            train_one(task, model_cfg, train_cfg, paths)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process with OpenMP threads
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(train_one, t, model_cfg, train_cfg, paths) for t in jobs]
        for future in futures:
            future.result()  # a failed baseline fails the stage with its own error


def worker_count(data: Path) -> int:
    """Processes for the baselines: the rule data-parallel training follows (one per
    `train.thread_count()` cores, or one for a small training split, where starting a process
    costs more than it saves)."""
    return distributed.auto_processes(Path(data) / "train.parquet")


def train_one(
    task: str, model_cfg: ModelConfig, train_cfg: TrainConfig, paths: BaselinePaths
) -> None:
    single = model_cfg.model_copy(update={"tasks": (task,), "read_only_tasks": ()})
    # Outside the stage's outputs, which DVC deletes before a rerun: resumable after a kill.
    checkpoints = paths.checkpoints or paths.models.with_name(f".{paths.models.name}.ckpt")
    result = train.run(
        single,
        train_cfg,
        paths.data,
        paths.models / task,
        paths.cache,
        checkpoints=checkpoints / task,
        label=f"baseline {task}",
    )
    print(f"baseline {task}: {result}", flush=True)


def score_baselines(tasks: tuple[str, ...], paths: BaselinePaths) -> pd.DataFrame:
    """The test split with each baseline's prediction columns, p_ctcvr = p_ctr * p_cvr."""
    test = pd.read_parquet(paths.data / "test.parquet")
    columns = [predict(paths.models / task, test, paths.cache) for task in tasks]
    predictions = pd.concat(columns, axis=1).rename(columns={"relevance": "relevance_pred"})
    if {"p_ctr", "p_cvr"} <= set(predictions.columns):
        predictions["p_ctcvr"] = predictions["p_ctr"] * predictions["p_cvr"]
    return with_truth(test.join(predictions), paths.truth)


def compare(multi: Metrics, single: Metrics) -> Comparison:
    """Per task and metric of the multi-task report: multi-task, single-task, oracle and the
    difference multi - single (lower is better for logloss, ece and rmse)."""
    comparison: Comparison = {}
    for task, values in multi.items():
        rows = {}
        for name, value in values.items():
            if name.startswith("oracle_") or name in COUNTS:
                continue
            other = single.get(task, {}).get(name)
            rows[name] = {
                "multi_task": value,
                "single_task": other,
                "oracle": values.get(f"oracle_{name}"),
                "multi_minus_single": None if value is None or other is None else value - other,
            }
        comparison[task] = rows
    return comparison


def comparison_table(comparison: Comparison) -> str:
    """The comparison as a fixed-width text table."""
    header = f"{'task':<10} {'metric':<13} {'multi':>8} {'single':>8} {'oracle':>8} {'m - s':>8}"
    lines = [header, "-" * len(header)]
    for task, metrics in comparison.items():
        for name, row in metrics.items():
            cells = [row[k] for k in ("multi_task", "single_task", "oracle", "multi_minus_single")]
            lines.append(f"{task:<10} {name:<13} " + " ".join(f"{fmt(c):>8}" for c in cells))
    return "\n".join(lines)
