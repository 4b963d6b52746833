"""Task metrics on top of scikit-learn: AUC, GAUC, logloss, ECE, NDCG@k, RMSE."""

from __future__ import annotations

import numpy as np
import pandas as pd

# scikit-learn is imported by the functions that use it: importing it takes ~1.5 s on a slow
# CPU, and the promote and report stages read only `Metrics` and `fmt` from here.

EPS = 1e-7


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present (AUC is undefined there)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return None
    return float(roc_auc_score(labels, scores))


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float | None:
    """Group AUC (Zhou et al., KDD 2018): per-group AUC weighted by the group's row count,
    over the groups that have both classes.

    Each group's AUC is the Mann-Whitney statistic of its scores' ranks (ties ranked as their
    average: ROC AUC's half credit for a tie), all groups at once: the test split has a
    thousand users, and an AUC call per user cost ~5 s of the evaluate stage."""
    labels = np.asarray(labels)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("gauc needs 0/1 labels")
    frame = pd.DataFrame({"y": labels.astype(np.float64), "s": scores, "g": groups})
    frame["rank"] = frame.groupby("g", sort=False)["s"].rank(method="average")
    frame["positive_rank"] = frame["rank"] * frame["y"]
    per = frame.groupby("g", sort=False).agg(
        n=("y", "size"), positives=("y", "sum"), rank_sum=("positive_rank", "sum")
    )
    negatives = per["n"] - per["positives"]
    both = (per["positives"] > 0) & (negatives > 0)
    if not both.any():
        return None
    per, negatives = per[both], negatives[both]
    pos = per["positives"]
    aucs = (per["rank_sum"] - pos * (pos + 1) / 2) / (pos * negatives)
    return float((aucs * per["n"]).sum() / per["n"].sum())


def logloss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    clipped = np.clip(probabilities, EPS, 1 - EPS)
    return float(log_loss(labels, clipped, labels=[0, 1]))


def ece(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> float | None:
    """Expected calibration error over equal-mass bins (rare positives make equal-width bins
    almost empty above the first one): scikit-learn's calibration curve, each bin's gap weighted
    by its share of the rows. None when only one class is present."""
    from sklearn.calibration import calibration_curve

    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=float)
    if len(np.unique(labels)) < 2:
        return None
    observed, predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="quantile")
    # The rows per non-empty bin, binned as calibration_curve bins them.
    edges = np.percentile(probabilities, np.linspace(0, 100, bins + 1))
    counts = np.bincount(np.searchsorted(edges[1:-1], probabilities), minlength=bins)
    shares = counts[counts > 0] / len(probabilities)
    return float(np.sum(shares * np.abs(observed - predicted)))


def mean_ndcg(grades: np.ndarray, scores: np.ndarray, queries: np.ndarray, k: int) -> float | None:
    """NDCG@k averaged over queries with at least two judged items: scikit-learn's `ndcg_score`
    per query (linear gains; tied scores share the mean gain of their positions; 0 for a query
    whose items are all graded 0), for all queries at once. A call per query cost ~2 s of the
    evaluate stage for ~750 queries."""
    grades = np.asarray(grades, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any() or np.isnan(grades).any():  # as ndcg_score: no silent ranking
        raise ValueError("mean_ndcg: grades and scores must not be NaN")
    codes = pd.factorize(pd.Series(queries), use_na_sentinel=False)[0]
    if len(codes) == 0:
        return None
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # each query's first sorted row
    positions = np.arange(sizes.max())
    discount = np.where(positions < k, 1.0 / np.log2(positions + 2.0), 0.0)
    before = np.concatenate([[0.0], np.cumsum(discount)])  # discount summed over ranks < i

    order = np.lexsort((-scores, codes))  # by query, then best score first
    code, grade, score = codes[order], grades[order], scores[order]
    rank = np.arange(len(code)) - starts[code]
    # A run of equal scores in a query: each of its ranks gets the run's mean grade.
    first = np.ones(len(code), dtype=bool)
    first[1:] = (code[1:] != code[:-1]) | (score[1:] != score[:-1])
    run = np.cumsum(first) - 1
    run_start = np.flatnonzero(first)
    run_size = np.diff(np.append(run_start, len(code)))
    run_gain = np.bincount(run, weights=grade) / run_size
    run_discount = before[rank[run_start] + run_size] - before[rank[run_start]]
    dcg = np.bincount(code[run_start], weights=run_gain * run_discount, minlength=len(sizes))

    ideal_order = np.lexsort((-grades, codes))
    ideal_code = codes[ideal_order]
    ideal_rank = np.arange(len(ideal_code)) - starts[ideal_code]
    ideal = np.bincount(
        ideal_code, weights=grades[ideal_order] * discount[ideal_rank], minlength=len(sizes)
    )
    ndcg = np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)[sizes >= 2]
    # A perfect ranking can come out an ulp above 1 (DCG and ideal DCG summed in other orders
    # when grades tie): NDCG is at most 1.
    return min(float(ndcg.mean()), 1.0) if len(ndcg) else None


def rmse(targets: np.ndarray, predictions: np.ndarray) -> float:
    from sklearn.metrics import mean_squared_error

    return float(np.sqrt(mean_squared_error(targets, predictions)))


Metrics = dict[str, dict[str, float | None]]  # task -> metric -> value, as metrics/*.json hold


def fmt(value: float | None) -> str:
    """A metric in a table: four decimals, `-` for a metric a task cannot have."""
    return "-" if value is None else f"{value:.4f}"


def metrics_table(report: Metrics) -> str:
    """A report as a fixed-width table: each task's metrics beside their oracle values."""
    lines = [f"{'task':<10} {'metric':<14} {'model':>8} {'oracle':>8}"]
    for task, values in report.items():
        for name, value in values.items():
            if name.startswith("oracle_") or name in ("rows", "positives"):
                continue
            oracle = values.get(f"oracle_{name}")
            lines.append(f"{task:<10} {name:<14} {fmt(value):>8} {fmt(oracle):>8}")
    return "\n".join(lines)
