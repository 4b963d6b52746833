"""Evaluate a trained model on the test split, each metric beside its oracle value.

The oracle scores every row with the simulator's true probabilities (or the true latent
relevance): the ceiling a perfect model could reach on exactly the same rows and labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mtlrec.config import EvaluateConfig
from mtlrec.evaluation import metrics
from mtlrec.model.predict import predict


def run(
    config: EvaluateConfig,
    model_dir: Path,
    data_dir: Path,
    truth_dir: Path | None,
    cache_dir: Path,
    out: Path,
) -> dict[str, dict[str, float | None]]:
    report = evaluate_model(config, model_dir, data_dir, truth_dir, cache_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def evaluate_model(
    config: EvaluateConfig,
    model_dir: Path,
    data_dir: Path,
    truth_dir: Path | None,
    cache_dir: Path,
) -> dict[str, dict[str, float | None]]:
    """Metrics of one saved model on the test split (with oracle values when truth is given)."""
    test = pd.read_parquet(data_dir / "test.parquet")
    # The relevance prediction would collide with the relevance label column.
    predictions = predict(model_dir, test, cache_dir).rename(columns={"relevance": "relevance_pred"})
    scored = test.join(predictions)
    if truth_dir is not None and (truth_dir / "impressions.parquet").is_file():
        scored = attach_truth(scored, truth_dir)
    return task_metrics(scored, config.ndcg_k)


def attach_truth(scored: pd.DataFrame, truth_dir: Path) -> pd.DataFrame:
    shown = pd.read_parquet(
        truth_dir / "impressions.parquet",
        columns=["impression_id", "p_click", "p_purchase_given_click"],
    ).rename(columns={"impression_id": "row_id"})
    judged = pd.read_parquet(
        truth_dir / "judgments.parquet", columns=["query", "item_id", "true_relevance"]
    )
    scored = scored.merge(shown, on="row_id", how="left").set_index(scored.index)
    return scored.merge(judged, on=["query", "item_id"], how="left").set_index(scored.index)


def task_metrics(scored: pd.DataFrame, k: int) -> dict[str, dict[str, float | None]]:
    shown = scored[scored["source"] == "impression"]
    judged = scored[scored["source"] == "judgment"]
    report: dict[str, dict[str, float | None]] = {}
    if "p_ctr" in scored and len(shown):
        report["ctr"] = _binary(shown, "click", "p_ctr", "p_click", groups="user_id")
    if "p_cvr" in scored and len(shown):
        clicked = shown[shown["click"] == 1]
        report["cvr"] = _binary(clicked, "purchase", "p_cvr", "p_purchase_given_click")
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
