"""Plot data for DVC: ROC, precision-recall and calibration curves, the training curve."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlrec.evaluation import plots


@pytest.fixture(scope="module")
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.0, 0.3, 5000)
    return (rng.uniform(0, 1, 5000) < p).astype(int), p


def test_roc_runs_from_origin_to_corner_and_is_thinned(scores) -> None:
    curve = plots.roc(*scores)
    assert len(curve) <= plots.MAX_POINTS
    assert (curve.iloc[0]["fpr"], curve.iloc[0]["tpr"]) == (0.0, 0.0)
    assert (curve.iloc[-1]["fpr"], curve.iloc[-1]["tpr"]) == (1.0, 1.0)
    assert curve["fpr"].is_monotonic_increasing and curve["tpr"].is_monotonic_increasing


def test_precision_recall_is_ordered_by_recall(scores) -> None:
    curve = plots.precision_recall(*scores)
    assert curve["recall"].is_monotonic_increasing and len(curve) <= plots.MAX_POINTS
    assert curve["precision"].between(0, 1).all()


def test_calibrated_scores_lie_near_the_diagonal(scores) -> None:
    curve = plots.calibration(*scores)
    assert len(curve) == plots.CALIBRATION_BINS
    assert np.abs(curve["observed"] - curve["predicted"]).max() < 0.05


def test_write_curves_per_task_skips_one_class(scores, tmp_path: Path) -> None:
    (tmp_path / "roc").mkdir()
    (tmp_path / "roc" / "stale.csv").write_text("x\n")
    labels, p = scores
    written = plots.write_curves({"ctr": (labels, p), "cvr": (np.zeros(10, int), p[:10])}, tmp_path)
    assert sorted(path.relative_to(tmp_path).as_posix() for path in written) == [
        "calibration/ctr.csv", "precision_recall/ctr.csv", "roc/ctr.csv",
    ]  # fmt: skip
    assert not (tmp_path / "roc" / "stale.csv").exists()
    assert list(pd.read_csv(tmp_path / "roc" / "ctr.csv").columns) == ["fpr", "tpr"]


def test_training_curve_is_copied_when_present(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    assert plots.copy_training_curve(model, tmp_path / "plots") is None
    (model / plots.TRAINING_CURVE).write_text("epoch,train_loss\n1,0.5\n")
    copied = plots.copy_training_curve(model, tmp_path / "plots")
    assert copied.read_text() == "epoch,train_loss\n1,0.5\n"
