"""Training loop: AdamW on mixed impression/judgement batches, early stopping, resumable.

`run` is the function behind the `train` stage (CLI, dvc, Airflow). Seeds are fixed and the
global torch RNG is re-seeded at every epoch from (seed, epoch), so a run resumed from a
checkpoint draws the same shuffles and dropout masks as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from mtlrec.config import ModelConfig, TrainConfig
from mtlrec.model.losses import LossTally, LossWeighting, compute_losses
from mtlrec.model.multitask import MultiTaskModel
from mtlrec.model.predict import FORMAT_VERSION, save_model
from mtlrec.model.tasks import LossTerm
from mtlrec.model.text import build_text_encoder, encoder_id
from mtlrec.training.checkpoint import (
    CHECKPOINT_DIR,
    TrainState,
    fingerprint,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from mtlrec.training.data import (
    SCHEMA_FILE,
    Split,
    TrainingData,
    load_training_data,
    ordered_batches,
    shuffled_batches,
)

CURVE_FILE = "training_curve.csv"
SUMMARY_FILE = "train_summary.json"
# Half the cores, at most 4: small MLP batches gain little from more threads (2 threads: -25% per
# epoch on an idle 2-core box), while OpenMP threads spin-waiting on a busy one (Airflow, Feast,
# other jobs) made an epoch 10x slower in a measurement.
MAX_THREADS = 4
GRAD_CLIP_NORM = 5.0  # a rare batch with a huge ESMM loss must not wreck the embeddings
EVAL_BATCH = 8192
PROJECT_MARKERS = (".git", "dvc.yaml", "pyproject.toml", "params.yaml")


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    best_epoch: int
    best_valid_loss: float
    epochs_run: int
    stopped_early: bool
    resumed_from_epoch: int | None
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Session:
    """The model, its learned loss weights, the optimizer and the data of one run."""

    model: MultiTaskModel
    weighting: LossWeighting
    trainable: nn.ModuleDict  # model + weighting: what checkpoints hold
    optimizer: torch.optim.Optimizer
    data: TrainingData
    cfg: TrainConfig

    @classmethod
    def create(cls, model: MultiTaskModel, cfg: TrainConfig, data: TrainingData) -> Session:
        terms: tuple[LossTerm, ...] = tuple(task.loss_term for task in model.tasks)
        weighting = LossWeighting(terms, cfg.loss_weighting, cfg.loss_weights)
        groups = [
            {"params": [p for p in model.parameters() if p.requires_grad]},
            # Decay would pull the learned log-variances towards 0, i.e. towards equal weights.
            {"params": list(weighting.parameters()), "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        trainable = nn.ModuleDict({"model": model, "loss_weighting": weighting})
        return cls(model, weighting, trainable, optimizer, data, cfg)


def thread_count() -> int:
    return max(1, min(MAX_THREADS, len(os.sched_getaffinity(0)) // 2))


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Fixed seeds, deterministic kernels and a fixed thread count; restored afterwards."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(thread_count())
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def _train_epoch(session: Session, epoch: int) -> dict[str, float]:
    """One pass over the shuffled train split; mean batch loss and row-weighted term means."""
    model, split = session.model, session.data.train
    model.train()
    tally, total, n_batches = LossTally(), 0.0, 0
    # The bar's rate is samples/s; disable=None hides it when stderr is not a terminal.
    bar = tqdm(total=len(split), unit="sample", unit_scale=True, desc=f"epoch {epoch}",
               disable=None, leave=False)  # fmt: skip
    for rows in shuffled_batches(len(split), session.cfg.batch_size):
        inputs, targets = split.batch(rows)
        losses = compute_losses(model(inputs), targets, model.tasks)
        loss = session.weighting(losses)
        if loss.requires_grad:  # False only when no row of the batch has any configured label
            session.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(session.trainable.parameters(), GRAD_CLIP_NORM)
            session.optimizer.step()
        tally.add(losses)
        total, n_batches = total + loss.item(), n_batches + 1
        bar.update(len(rows))
    bar.close()
    means = {f"train_{term}": value for term, value in tally.means().items()}
    return {"train_loss": total / max(n_batches, 1), **means}


@torch.no_grad()
def evaluate_losses(model: MultiTaskModel, split: Split) -> dict[str, float]:
    """Row-weighted mean of each loss term over a whole split, in eval mode."""
    model.eval()
    tally = LossTally()
    for rows in ordered_batches(len(split), EVAL_BATCH):
        inputs, targets = split.batch(rows)
        tally.add(compute_losses(model(inputs), targets, model.tasks))
    return tally.means()


def _run_epoch(session: Session, epoch: int) -> dict[str, float]:
    started = time.perf_counter()
    torch.manual_seed(_epoch_seed(session.cfg.seed, epoch))
    row: dict[str, float] = {"epoch": epoch, **_train_epoch(session, epoch)}
    seconds = time.perf_counter() - started
    valid = evaluate_losses(session.model, session.data.valid)
    # Epochs are compared on a fixed scale (the static weights) even when the training weights
    # are learned, so early stopping does not chase the moving uncertainty weights.
    static = session.weighting.static
    row["valid_loss"] = sum(static[term] * value for term, value in valid.items())
    row.update({f"valid_{term}": value for term, value in valid.items()})
    row.update({f"weight_{term}": w for term, w in session.weighting.weights().items()})
    row.update({"train_seconds": seconds, "samples_per_s": len(session.data.train) / seconds})
    return row


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def _fit(
    session: Session, state: TrainState, best: dict[str, torch.Tensor], root: Path
) -> tuple[TrainState, dict[str, torch.Tensor]]:
    """Epochs until `epochs` or early stopping; a checkpoint after each."""
    while state.epoch < session.cfg.epochs and not state.stopped_early:
        row = _run_epoch(session, state.epoch + 1)
        state.epoch += 1
        state.history.append(row)
        if row["valid_loss"] < state.best_valid_loss:  # NaN never improves
            state.best_epoch, state.best_valid_loss = state.epoch, row["valid_loss"]
            state.bad_epochs = 0
            best = _snapshot(session.trainable)
        else:
            state.bad_epochs += 1
            state.stopped_early = state.bad_epochs >= session.cfg.patience
        save_checkpoint(root, state, session.trainable, best, session.optimizer)
    return state, best


def _clear_outputs(out_dir: Path) -> None:
    """Everything but the checkpoints goes: no stale file of an earlier run survives."""
    out_dir.mkdir(parents=True, exist_ok=True)
    foreign = [name for name in PROJECT_MARKERS if (out_dir / name).exists()]
    if foreign:  # a mistyped out_dir must not wipe a project
        raise ValueError(f"refusing to clear {out_dir}: it holds {foreign}, not a model")
    for child in out_dir.iterdir():
        if child.name == CHECKPOINT_DIR:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _resume_or_start(
    session: Session, root: Path, run_fingerprint: str
) -> tuple[TrainState, dict[str, torch.Tensor], int | None]:
    path = latest_checkpoint(root, run_fingerprint) if root.is_dir() else None
    if path is None:
        shutil.rmtree(root, ignore_errors=True)  # another run's checkpoints cannot be resumed
        return TrainState(run_fingerprint), _snapshot(session.trainable), None
    state, best = load_checkpoint(path, session.trainable, session.optimizer)
    return state, best, state.epoch


def _write_outputs(session: Session, state: TrainState, out_dir: Path, seconds: float) -> None:
    save_model(out_dir, session.model, session.data.spec)
    pd.DataFrame(state.history).to_csv(out_dir / CURVE_FILE, index=False)
    best_row = next((r for r in state.history if r["epoch"] == state.best_epoch), {})
    summary = {
        "best_epoch": state.best_epoch,
        "best_valid_loss": state.best_valid_loss,
        "best_valid_terms": {k: v for k, v in best_row.items() if k.startswith("valid_")},
        "epochs_run": state.epoch,
        "stopped_early": state.stopped_early,
        "bottom": session.model.cfg.bottom,
        "tasks": list(session.model.cfg.tasks),
        "text_encoder": encoder_id(session.model.cfg.text),
        "n_parameters": sum(p.numel() for p in session.model.parameters() if p.requires_grad),
        "n_train_rows": len(session.data.train),
        "n_valid_rows": len(session.data.valid),
        "threads": torch.get_num_threads(),
        "seconds": seconds,
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))


def _run_fingerprint(model_cfg: ModelConfig, train_cfg: TrainConfig, data_dir: Path) -> str:
    files = [data_dir / "train.parquet", data_dir / "valid.parquet", data_dir / SCHEMA_FILE]
    configs = (model_cfg.model_dump(mode="json"), train_cfg.model_dump(mode="json"))
    return fingerprint(FORMAT_VERSION, *configs, files=files)


def run(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data_dir: Path,
    out_dir: Path,
    cache_dir: Path,
    *,
    keep_checkpoints: bool = False,
) -> TrainResult:
    """Train on `data_dir/{train,valid}.parquet`, write the best epoch's model to `out_dir`.

    Checkpoints of an interrupted run with the same config and data are resumed; they are
    removed after success unless `keep_checkpoints`.
    """
    started = time.perf_counter()
    data_dir, out_dir, cache_dir = Path(data_dir), Path(out_dir), Path(cache_dir)
    _clear_outputs(out_dir)
    root = out_dir / CHECKPOINT_DIR
    with deterministic(train_cfg.seed):
        encoder = build_text_encoder(model_cfg.text) if model_cfg.text.finetune_layers else None
        data = load_training_data(model_cfg, data_dir, cache_dir, encoder)
        torch.manual_seed(train_cfg.seed)  # the model's init does not depend on data loading
        session = Session.create(MultiTaskModel(model_cfg, data.spec, encoder), train_cfg, data)
        fp = _run_fingerprint(model_cfg, train_cfg, data_dir)
        state, best, resumed_from = _resume_or_start(session, root, fp)
        state, best = _fit(session, state, best, root)
        session.trainable.load_state_dict(best)
        seconds = time.perf_counter() - started
        _write_outputs(session, state, out_dir, seconds)
    if not keep_checkpoints:
        shutil.rmtree(root, ignore_errors=True)
    return TrainResult(
        out_dir=out_dir,
        best_epoch=state.best_epoch,
        best_valid_loss=state.best_valid_loss,
        epochs_run=state.epoch,
        stopped_early=state.stopped_early,
        resumed_from_epoch=resumed_from,
        seconds=seconds,
        history=state.history,
    )
