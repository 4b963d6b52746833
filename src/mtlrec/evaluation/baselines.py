"""Single-task baselines: the multi-task model's architecture, trained on one task each.

The `train` stage trains them beside the challenger (`training/jobs.py`); this stage scores them.
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
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mtlrec.config import BaselinesConfig, EvaluateConfig
from mtlrec.evaluation.evaluate import task_metrics, with_truth, write_metrics
from mtlrec.evaluation.metrics import Metrics, fmt
from mtlrec.features.dataset import labelled
from mtlrec.model.predict import predict
from mtlrec.model.tasks import TASKS

COUNTS = ("rows", "positives")  # sizes, not metrics: left out of the comparison
Comparison = dict[str, dict[str, dict[str, float | None]]]


@dataclass(frozen=True)
class BaselinePaths:
    data: Path
    truth: Path | None
    cache: Path
    models: Path  # one model folder per baseline task (the train stage writes them)
    challenger_metrics: Path  # the multi-task model's metrics (evaluate stage)
    out: Path  # baselines' metrics
    comparison: Path


@dataclass(frozen=True)
class BaselinesOutcome:
    metrics: Metrics
    comparison: Comparison

    def __str__(self) -> str:
        return comparison_table(self.comparison)


def run(evaluation: EvaluateConfig, cfg: BaselinesConfig, paths: BaselinePaths) -> BaselinesOutcome:
    """Score the baselines of `cfg.tasks` that the data has labels for (trained by the `train`
    stage, `training/jobs.py`) on the test split, compare them with the challenger."""
    tasks = labelled(cfg.tasks, paths.data)
    missing = [task for task in tasks if not (paths.models / task).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"no baseline model for {missing} in {paths.models}: the train stage trains them "
            "(mtlrec train --baselines)"
        )
    scored = score_baselines(tasks, paths)
    report = task_metrics(scored, evaluation.ndcg_k)
    write_metrics(report, paths.out)
    challenger: Metrics = json.loads(paths.challenger_metrics.read_text())
    comparison = compare(challenger, report)
    paths.comparison.parent.mkdir(parents=True, exist_ok=True)
    paths.comparison.write_text(json.dumps(comparison, indent=2, sort_keys=True) + "\n")
    return BaselinesOutcome(report, comparison)


def score_baselines(tasks: tuple[str, ...], paths: BaselinePaths) -> pd.DataFrame:
    """The test split with each baseline's prediction columns, p_ctcvr = p_ctr * p_cvr."""
    test = pd.read_parquet(paths.data / "test.parquet")
    # Each model scores the rows that hold its task's label, the only rows its metrics read:
    # the relevance model the judgements (7% of the split), the others the impressions.
    columns = [
        predict(paths.models / task, test[test[TASKS[task].label].notna()], paths.cache)
        for task in tasks
    ]
    predictions = pd.concat(columns, axis=1).reindex(test.index)
    predictions = predictions.rename(columns={"relevance": "relevance_pred"})
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
