"""Evaluation of a saved model: metrics beside the oracle, plot files, and the gate refusing a
deliberately worse challenger scored on the same test set."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlrec.config import EvaluateConfig, GateConfig
from mtlrec.evaluation import evaluate
from mtlrec.evaluation.decision import decide
from mtlrec.training.synthetic import write_synthetic_dataset
from mtlrec.training.train import run as train
from tests.plain import plain_model, plain_text, plain_train

MODEL = plain_model(
    embedding_dim=8, hash_buckets=64, text_dim=4, bottom_dims=(16,), tower_dims=(8,),
    field_interactions=True, bias_features=("position",),
    text=plain_text(encoder="tiny", max_length=16, word_match=True),
)  # fmt: skip
TRAIN = plain_train(epochs=3, batch_size=32, lr=0.01, selection="normalized")


def write_truth(data_dir: Path, truth_dir: Path) -> Path:
    """A ground truth in the simulator's layout for the synthetic rows: the oracle columns."""
    frames = [
        pd.read_parquet(data_dir / f"{split}.parquet") for split in ("train", "valid", "test")
    ]
    rows = pd.concat(frames, ignore_index=True)
    shown, judged = rows[rows["source"] == "impression"], rows[rows["source"] == "judgment"]
    truth_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pd.DataFrame({
        "impression_id": shown["row_id"],
        "p_click": np.clip(0.3 * shown["click"] + rng.uniform(0.1, 0.4, len(shown)), 0, 1),
        "p_purchase_given_click": rng.uniform(0.05, 0.3, len(shown)),
    }).to_parquet(truth_dir / "impressions.parquet")  # fmt: skip
    judged = judged.drop_duplicates(["query", "item_id"])
    judged[["query", "item_id"]].assign(true_relevance=judged["relevance"]).to_parquet(
        truth_dir / "judgments.parquet"
    )
    return truth_dir


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic data, its truth, a text cache and a trained model (the champion)."""
    root = tmp_path_factory.mktemp("evaluate")
    data = write_synthetic_dataset(root / "data", 1500, 200, seed=1)
    paths = {"data": data, "truth": write_truth(data, root / "truth"), "cache": root / "cache"}
    train(MODEL, TRAIN, data, root / "model", paths["cache"])
    return {**paths, "model": root / "model", "root": root}


def test_run_writes_metrics_with_oracle_and_plots(workspace: dict[str, Path]) -> None:
    out, plots = workspace["root"] / "metrics.json", workspace["root"] / "plots"
    w = workspace
    report = evaluate.run(
        EvaluateConfig(), w["model"], w["data"], w["truth"], w["cache"], out, plots
    )
    assert json.loads(out.read_text()) == report
    assert set(report) == {"ctr", "cvr", "ctcvr", "relevance"}
    assert {"auc", "gauc", "logloss", "ece", "oracle_auc", "oracle_gauc"} <= set(report["ctr"])
    assert {"ndcg@10", "rmse", "auc_relevant", "oracle_ndcg@10"} <= set(report["relevance"])
    for kind in ("roc", "precision_recall", "calibration"):
        assert sorted(p.name for p in (plots / kind).iterdir()) == [
            "ctcvr.csv", "ctr.csv", "cvr.csv",
        ]  # fmt: skip
    curve = pd.read_csv(plots / "training_curve.csv")
    assert list(curve["epoch"]) == [1, 2, 3] and "valid_score" in curve


def test_task_metrics_skip_ctcvr_without_its_prediction() -> None:
    scored = pd.DataFrame({
        "source": "impression", "user_id": [1, 1, 2, 2], "click": [1, 0, 1, 1],
        "purchase": [1, 0, 0, 1], "p_ctr": [0.9, 0.1, 0.6, 0.7], "p_cvr": [0.8, 0.1, 0.2, 0.9],
    })  # fmt: skip
    report = evaluate.task_metrics(scored, k=10)
    assert set(report) == {"ctr", "cvr"} and report["cvr"]["rows"] == 3.0
    assert report["cvr"]["auc"] == 1.0


def test_gate_refuses_a_deliberately_worse_challenger(
    workspace: dict[str, Path], tmp_path: Path
) -> None:
    # The challenger learns from shuffled labels: the same features and code, no signal.
    worse_data = tmp_path / "shuffled"
    shutil.copytree(workspace["data"], worse_data)
    for split in ("train", "valid"):
        frame = pd.read_parquet(worse_data / f"{split}.parquet")
        labels = ["click", "purchase", "relevance"]
        frame[labels] = frame[labels].sample(frac=1.0, random_state=0).to_numpy()
        frame.to_parquet(worse_data / f"{split}.parquet")
    train(MODEL, TRAIN, worse_data, tmp_path / "challenger", workspace["cache"])
    w, config = workspace, EvaluateConfig()
    champion = evaluate.evaluate_model(config, w["model"], w["data"], w["truth"], w["cache"])
    challenger = evaluate.evaluate_model(
        config, tmp_path / "challenger", w["data"], w["truth"], w["cache"]
    )
    assert challenger["ctcvr"]["auc"] < champion["ctcvr"]["auc"]
    decision = decide(GateConfig(), challenger, champion)
    assert not decision.promoted
    assert any("does not beat" in reason for reason in decision.reasons)
    # And the other way round, on the primary metric: cvr's AUC over this tiny test split's
    # few clicked rows is noise that a change of random stream moves by more than 0.01.
    assert decide(GateConfig(watched=("ctcvr.auc",)), champion, challenger).promoted
