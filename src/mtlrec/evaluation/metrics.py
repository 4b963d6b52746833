"""Task metrics on top of scikit-learn: AUC, GAUC, logloss, ECE, NDCG@k, RMSE."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import log_loss, mean_squared_error, ndcg_score, roc_auc_score

EPS = 1e-7


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present (AUC is undefined there)."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return None
    return float(roc_auc_score(labels, scores))


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float | None:
    """Group AUC (Zhou et al., KDD 2018): per-group AUC weighted by the group's row count,
    over the groups that have both classes."""
    frame = pd.DataFrame({"y": labels, "s": scores, "g": groups})
    total, weight = 0.0, 0
    for _, rows in frame.groupby("g", sort=False):
        value = auc(rows["y"].to_numpy(), rows["s"].to_numpy())
        if value is not None:
            total += value * len(rows)
            weight += len(rows)
    return total / weight if weight else None


def logloss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    clipped = np.clip(probabilities, EPS, 1 - EPS)
    return float(log_loss(labels, clipped, labels=[0, 1]))


def ece(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> float | None:
    """Expected calibration error over equal-mass bins (rare positives make equal-width bins
    almost empty above the first one): scikit-learn's calibration curve, each bin's gap weighted
    by its share of the rows. None when only one class is present."""
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
    """NDCG@k averaged over queries with at least two judged items."""
    frame = pd.DataFrame({"y": grades, "s": scores, "q": queries})
    values = [
        ndcg_score([rows["y"].to_numpy()], [rows["s"].to_numpy()], k=k)
        for _, rows in frame.groupby("q", sort=False)
        if len(rows) >= 2
    ]
    # A perfect ranking can come out an ulp above 1 (DCG and ideal DCG summed in other orders
    # when grades tie): NDCG is at most 1.
    return min(float(np.mean(values)), 1.0) if values else None


def rmse(targets: np.ndarray, predictions: np.ndarray) -> float:
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
