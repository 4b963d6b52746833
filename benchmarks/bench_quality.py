"""The quality table: multi-task vs single-task baselines vs the oracle, per task, on test.

Reads what the pipeline wrote in a project (after `dvc repro`, default data): the comparison of
`mtlrec baselines` (metrics/comparison.json) and the test split's sizes (metrics/challenger.json).
AUCs first (the targets: each within 0.01 of its oracle; multi-task not below single-task, above
it on cvr), then every metric. For each AUC pair it adds a paired bootstrap of multi - single over
the test rows when the models and data are there (`--bootstrap N`, 0 to skip), so a difference
can be told from noise (cvr: ~2,000 positive rows on the default data).

    .venv/bin/python benchmarks/bench_quality.py [--project .] [--bootstrap 200]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from mtlrec.evaluation.baselines import BaselinePaths, comparison_table, score_baselines
from mtlrec.evaluation.evaluate import score_test

AUCS = (("ctr", "auc"), ("cvr", "auc"), ("ctcvr", "auc"), ("relevance", "auc_relevant"))


def _rows(frame: pd.DataFrame, task: str) -> tuple[pd.DataFrame, str, str]:
    """The rows, label and score column of one task's AUC."""
    shown = frame[frame["source"] == "impression"]
    if task == "ctr":
        return shown, "click", "p_ctr"
    if task == "cvr":
        return shown[shown["click"] == 1], "purchase", "p_cvr"
    if task == "ctcvr":
        return shown, "purchase", "p_ctcvr"
    judged = frame[frame["source"] == "judgment"]
    return (
        judged.assign(relevant=(judged["relevance"] >= 2).astype(int)),
        "relevant",
        "relevance_pred",
    )


def bootstrap(project: Path, n: int, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Per task: the 2.5% and 97.5% quantiles of AUC(multi) - AUC(single) over resampled rows."""
    data, cache = project / "data" / "training", project / "data" / "cache"
    multi = score_test(project / "models" / "challenger", data, None, cache)
    paths = BaselinePaths(
        data, None, cache, project / "models" / "baselines", Path(), Path(), Path()
    )
    single = score_baselines(("ctr", "cvr", "relevance"), paths)
    rng, out = np.random.default_rng(seed), {}
    for task, _ in AUCS:
        rows, label, score = _rows(multi, task)
        y, m = rows[label].to_numpy(), rows[score].to_numpy()
        s = _rows(single, task)[0].loc[rows.index, score].to_numpy()
        deltas = []
        for _ in range(n):
            pick = rng.integers(0, len(y), len(y))
            if y[pick].min() != y[pick].max():
                deltas.append(roc_auc_score(y[pick], m[pick]) - roc_auc_score(y[pick], s[pick]))
        out[task] = (float(np.quantile(deltas, 0.025)), float(np.quantile(deltas, 0.975)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    comparison = json.loads((args.project / "metrics" / "comparison.json").read_text())
    sizes = json.loads((args.project / "metrics" / "challenger.json").read_text())
    intervals = bootstrap(args.project, args.bootstrap) if args.bootstrap else {}
    header = f"{'task':<22} {'multi':>7} {'single':>7} {'oracle':>7} {'oracle-multi':>12}"
    print(f"{header} {'multi-single [95% bootstrap]':>30} {'test rows (positives)':>22}")
    for task, metric in AUCS:
        row = comparison[task][metric]
        m, s, o = row["multi_task"], row["single_task"], row["oracle"]
        low, high = intervals.get(task, (np.nan, np.nan))
        size = sizes[task]
        count = f"{size['rows']:,.0f}" + (
            f" ({size['positives']:,.0f})" if "positives" in size else ""
        )
        print(f"{task + '.' + metric:<22} {m:>7.4f} {s:>7.4f} {o:>7.4f} {o - m:>12.4f} "
              f"{m - s:>+9.4f} [{low:+.4f}, {high:+.4f}] {count:>22}")  # fmt: skip
    print("\nEvery metric (lower is better for logloss, ece, rmse):")
    print(comparison_table(comparison))


if __name__ == "__main__":
    main()
