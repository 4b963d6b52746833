"""Evaluate a trained model on the test split, each metric beside its oracle value.

The oracle scores every row with the simulator's true probabilities (or the true latent
relevance): the ceiling a perfect model could reach on exactly the same rows and labels.
With a plots folder, the ROC, precision-recall and calibration curves of ctr, cvr and ctcvr and
the model's training curve are written there for `dvc plots`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mtlrec.config import EvaluateConfig
from mtlrec.evaluation import metrics, plots
from mtlrec.evaluation.metrics import Metrics
from mtlrec.model.predict import predict


def run(
    config: EvaluateConfig,
    model_dir: Path,
    data_dir: Path,
    truth_dir: Path | None,
    cache_dir: Path,
    out: Path,
    plots_dir: Path | None = None,
) -> Metrics:
    scored = score_test(model_dir, data_dir, truth_dir, cache_dir)
    report = task_metrics(scored, config.ndcg_k)
    write_metrics(report, out)
    if plots_dir is not None:
        plots.write_curves(binary_labels(scored), plots_dir)
        plots.copy_training_curve(model_dir, plots_dir)
    return report


def write_metrics(report: Metrics, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def evaluate_model(
    config: EvaluateConfig,
    model_dir: Path,
    data_dir: Path,
    truth_dir: Path | None,
    cache_dir: Path,
) -> Metrics:
    """Metrics of one saved model on the test split (with oracle values when truth is given)."""
    return task_metrics(score_test(model_dir, data_dir, truth_dir, cache_dir), config.ndcg_k)


def score_test(
    model_dir: Path, data_dir: Path, truth_dir: Path | None, cache_dir: Path
) -> pd.DataFrame:
    """The test split with the model's predictions (`relevance_pred` for the relevance output,
    which would collide with the label) and, given the truth, the oracle's columns."""
    test = pd.read_parquet(Path(data_dir) / "test.parquet")
    predictions = predict(model_dir, test, cache_dir).rename(
        columns={"relevance": "relevance_pred"}
    )
    return with_truth(test.join(predictions), truth_dir)


def with_truth(scored: pd.DataFrame, truth_dir: Path | None) -> pd.DataFrame:
    if truth_dir is not None and (Path(truth_dir) / "impressions.parquet").is_file():
        return attach_truth(scored, Path(truth_dir))
    return scored


def binary_labels(scored: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(labels, probabilities) of each binary task the scored frame has predictions for."""
    shown = scored[scored["source"] == "impression"]
    clicked = shown[shown["click"] == 1]
    pairs = {"ctr": (shown, "click", "p_ctr"), "cvr": (clicked, "purchase", "p_cvr")}
    pairs["ctcvr"] = (shown, "purchase", "p_ctcvr")
    return {
        task: (rows[label].to_numpy(dtype=int), rows[score].to_numpy(dtype=float))
        for task, (rows, label, score) in pairs.items()
        if score in rows and len(rows)
    }


def attach_truth(scored: pd.DataFrame, truth_dir: Path) -> pd.DataFrame:
    """The scored rows with the simulator's true probabilities (impressions, by id) and true
    relevance (judgements, by query and item); NaN where the truth has no row."""
    shown = pq.read_table(
        truth_dir / "impressions.parquet",
        columns=["impression_id", "p_click", "p_purchase_given_click"],
    )
    # Only the scored rows' truth becomes pandas: the file holds every impression (1.4M string
    # ids, 2 s to convert), a test split a seventh of them.
    ids = pa.array(scored["row_id"].to_numpy(dtype=object), type=pa.string())
    shown = shown.filter(pc.is_in(shown["impression_id"].cast(pa.string()), value_set=ids))
    by_id = shown.to_pandas().set_index("impression_id").reindex(scored["row_id"].to_numpy())
    judged = pd.read_parquet(
        truth_dir / "judgments.parquet", columns=["query", "item_id", "true_relevance"]
    ).set_index(["query", "item_id"])
    pairs = pd.MultiIndex.from_arrays([scored["query"], scored["item_id"]])
    # Aligned by position, not merged: a merge takes every column of the wide frame (~1.5 s).
    return scored.assign(
        p_click=by_id["p_click"].to_numpy(),
        p_purchase_given_click=by_id["p_purchase_given_click"].to_numpy(),
        true_relevance=judged["true_relevance"].reindex(pairs).to_numpy(),
    )


def task_metrics(scored: pd.DataFrame, k: int) -> Metrics:
    """Every metric of the tasks the scored frame has predictions for (a single-task CVR model
    has no p_ctcvr: its ctcvr comes from combining it with a ctr model, see baselines.py)."""
    shown = scored[scored["source"] == "impression"]
    judged = scored[scored["source"] == "judgment"]
    report: Metrics = {}
    if "p_ctr" in scored and len(shown):
        report["ctr"] = _binary(shown, "click", "p_ctr", "p_click", groups="user_id")
    if "p_cvr" in scored and len(shown):
        clicked = shown[shown["click"] == 1]
        report["cvr"] = _binary(clicked, "purchase", "p_cvr", "p_purchase_given_click")
    if "p_ctcvr" in scored and len(shown):
        truth = shown.assign(p_ctcvr_truth=_truth_product(shown))
        report["ctcvr"] = _binary(truth, "purchase", "p_ctcvr", "p_ctcvr_truth")
    if "relevance_pred" in scored and len(judged):
        report["relevance"] = _graded(judged, k)
    return report


def _truth_product(shown: pd.DataFrame) -> pd.Series | float:
    if "p_click" not in shown:
        return np.nan
    return shown["p_click"] * shown["p_purchase_given_click"]


def _binary(
    rows: pd.DataFrame, label: str, score: str, oracle: str, groups: str | None = None
) -> dict[str, float | None]:
    y = rows[label].to_numpy(dtype=int)
    result = _binary_scores(y, rows[score].to_numpy(), rows, groups, prefix="")
    result["rows"] = float(len(rows))
    result["positives"] = float(y.sum())
    if oracle in rows and rows[oracle].notna().all():
        result.update(_binary_scores(y, rows[oracle].to_numpy(), rows, groups, prefix="oracle_"))
    return result


def _binary_scores(
    y: np.ndarray, p: np.ndarray, rows: pd.DataFrame, groups: str | None, prefix: str
) -> dict[str, float | None]:
    result = {
        f"{prefix}auc": metrics.auc(y, p),
        f"{prefix}logloss": metrics.logloss(y, p),
        f"{prefix}ece": metrics.ece(y, p),
    }
    if groups is not None:
        result[f"{prefix}gauc"] = metrics.gauc(y, p, rows[groups].to_numpy())
    return result


def _graded(judged: pd.DataFrame, k: int) -> dict[str, float | None]:
    grades = judged["relevance"].to_numpy()
    queries = judged["query"].to_numpy()
    relevant = (grades >= 2).astype(int)
    result: dict[str, float | None] = {"rows": float(len(judged))}
    for prefix, column in (("", "relevance_pred"), ("oracle_", "true_relevance")):
        if column not in judged or judged[column].isna().any():
            continue
        scores = judged[column].to_numpy()
        result[f"{prefix}ndcg@{k}"] = metrics.mean_ndcg(grades, scores, queries, k)
        result[f"{prefix}rmse"] = metrics.rmse(grades, scores)
        result[f"{prefix}auc_relevant"] = metrics.auc(relevant, scores)
    return result
