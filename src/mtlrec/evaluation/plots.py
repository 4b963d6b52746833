"""Plot data for DVC: ROC, precision-recall and calibration curves per binary task.

Each curve is a small CSV under `plots/<kind>/<task>.csv` (declared in dvc.yaml's top-level
`plots:`), so `dvc plots show` draws them and `dvc plots diff` overlays two experiments. The
curves come from scikit-learn; long ones are thinned to at most MAX_POINTS rows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

MAX_POINTS = 200
CALIBRATION_BINS = 10  # equal-mass bins: rare positives leave equal-width bins above 0.1 empty
TRAINING_CURVE = "training_curve.csv"


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    """At most MAX_POINTS rows, evenly spaced, the first and last kept."""
    if len(frame) <= MAX_POINTS:
        return frame.reset_index(drop=True)
    rows = np.unique(np.linspace(0, len(frame) - 1, MAX_POINTS).round().astype(int))
    return frame.iloc[rows].reset_index(drop=True)


def roc(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    fpr, tpr, _ = roc_curve(labels, scores)
    return _thin(pd.DataFrame({"fpr": fpr, "tpr": tpr}))


def precision_recall(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    precision, recall, _ = precision_recall_curve(labels, scores)
    # Increasing recall, as plotted.
    frame = pd.DataFrame({"recall": recall[::-1], "precision": precision[::-1]})
    return _thin(frame)


def calibration(labels: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """Observed positive rate against mean predicted probability, per equal-mass bin."""
    observed, predicted = calibration_curve(
        labels, probabilities, n_bins=CALIBRATION_BINS, strategy="quantile"
    )
    return pd.DataFrame({"predicted": predicted, "observed": observed})


CURVES = {"roc": roc, "precision_recall": precision_recall, "calibration": calibration}


def write_curves(binary: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path) -> list[Path]:
    """`binary` maps a task to (labels, probabilities); writes every curve of every task that has
    both classes, replacing what `out_dir` held."""
    for kind in CURVES:
        shutil.rmtree(out_dir / kind, ignore_errors=True)
    written = []
    for task, (labels, scores) in binary.items():
        if len(np.unique(labels)) < 2:
            continue  # no curve without both classes
        for kind, curve in CURVES.items():
            path = out_dir / kind / f"{task}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            curve(labels, scores).to_csv(path, index=False)
            written.append(path)
    return written


def copy_training_curve(model_dir: Path, out_dir: Path) -> Path | None:
    """The model's per-epoch training curve beside the other plots, if it has one."""
    source = model_dir / TRAINING_CURVE
    if not source.is_file():
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(source, out_dir / TRAINING_CURVE))
