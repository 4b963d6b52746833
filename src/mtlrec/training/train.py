"""Training loop: AdamW on mixed impression/judgement batches, early stopping, resumable.

`run` is the function behind the `train` stage (CLI, dvc, Airflow). Seeds are fixed and the
global torch RNG is re-seeded at every epoch from (seed, epoch), so a run resumed from a
checkpoint draws the same shuffles and dropout masks as an uninterrupted one. Under `torchrun`
the same `run` trains data-parallel (see `distributed.py`); only rank 0 writes.

The best epoch is chosen on the validation split by `train.selection`: "normalized" sums each
term's loss divided by the loss of predicting its training prior (normalized entropy), so the
relevance MSE, several times larger than the click log loss, does not decide alone; "loss" sums
the raw weighted terms.
"""

from __future__ import annotations

import functools
import json
import math
import random
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from mtlrec.config import ModelConfig, TrainConfig
from mtlrec.host import numpy_blas_kernels, read_host
from mtlrec.model.inputs import ModelInputs
from mtlrec.model.losses import (
    LossTally,
    LossWeighting,
    Targets,
    TermLoss,
    auxiliary_terms,
    compute_losses,
    constant_losses,
)
from mtlrec.model.multitask import MultiTaskModel, TaskOutputs
from mtlrec.model.predict import FORMAT_VERSION, save_model
from mtlrec.model.tasks import LossTerm
from mtlrec.model.text import build_text_encoder
from mtlrec.model.text_cache import encoder_id
from mtlrec.training.checkpoint import (
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
from mtlrec.training.distributed import World, joined, threads_per_process

CURVE_FILE = "training_curve.csv"
SUMMARY_FILE = "train_summary.json"
GRAD_CLIP_NORM = 5.0  # a rare batch with a huge ESMM loss must not wreck the embeddings
EVAL_BATCH = 8192
BIAS_LR_SCALE = 10.0  # the position-bias tower's rate, relative to `lr`
SELECTION_COLUMNS = {"normalized": "valid_score", "loss": "valid_loss"}
# Wall-clock columns of an epoch's row: logged and written to the timings file, kept out of the
# model's outputs so that two identical trainings write identical files.
TIMING_COLUMNS = ("train_seconds", "samples_per_s")
PROJECT_MARKERS = (".git", "dvc.yaml", "pyproject.toml", "params.yaml")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    best_epoch: int
    best_valid_loss: float  # the selection value (`train.selection`) of the best epoch
    epochs_run: int
    stopped_early: bool
    resumed_from_epoch: int | None
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    def __str__(self) -> str:
        rates = [row["samples_per_s"] for row in self.history if "samples_per_s" in row]
        speed = f", {sum(rates) / len(rates):,.0f} samples/s" if rates else ""
        stop = ", stopped early" if self.stopped_early else ""
        resumed = self.resumed_from_epoch
        resume = f", resumed after epoch {resumed}" if resumed is not None else ""
        return (
            f"trained {self.epochs_run} epochs in {self.seconds:.1f}s{speed}{stop}{resume}; "
            f"best epoch {self.best_epoch} (valid {self.best_valid_loss:.4f}) -> {self.out_dir}"
        )


class Objective(nn.Module):
    """Model + loss weighting as one module: the unit that DDP wraps and all-reduces."""

    def __init__(
        self, model: MultiTaskModel, weighting: LossWeighting, aux: tuple[LossTerm, ...]
    ) -> None:
        super().__init__()
        self.model = model
        self.weighting = weighting
        self.aux = aux

    def losses(self, outputs: TaskOutputs, targets: Targets) -> dict[LossTerm, TermLoss]:
        return compute_losses(outputs, targets, self.model.tasks, self.aux)

    def forward(
        self, inputs: ModelInputs, targets: Targets
    ) -> tuple[torch.Tensor, dict[LossTerm, TermLoss]]:
        outputs = self.model(inputs)
        losses = self.losses(outputs, targets)
        # A zero term keeps every tower in the graph even when this batch (or this rank's share
        # of it) has no row of some kind, so each step all-reduces the same gradients.
        heads = (outputs.ctr_logit, outputs.cvr_logit, outputs.relevance)
        anchor = sum(head.sum() for head in heads if head is not None) * 0.0
        return self.weighting(losses) + anchor, losses


@dataclass
class Session:
    """The model, its learned loss weights, the optimizer and the data of one run."""

    model: MultiTaskModel
    weighting: LossWeighting
    trainable: nn.ModuleDict  # model + weighting: what checkpoints hold
    objective: Objective
    step: nn.Module  # the objective, wrapped in DDP under torchrun: what a training step calls
    optimizer: torch.optim.Optimizer
    data: TrainingData
    cfg: TrainConfig
    world: World
    references: dict[LossTerm, float]  # valid loss of the constant prior, per term
    precision: str = "fp32"  # `train.precision` resolved: what the bottom's first layer runs in
    numpy_blas: bool = False  # its fp32 products in numpy's BLAS (`amd_cpu`)
    blas_kernels: str | None = None  # which (`host.numpy_blas_kernels`), where numpy_blas
    label: str = ""  # names the model in the log when several train at once

    @classmethod
    def create(
        cls,
        model: MultiTaskModel,
        cfg: TrainConfig,
        data: TrainingData,
        world: World,
        label: str = "",
    ) -> Session:
        aux = auxiliary_terms(model.tasks, cfg.loss_weights)
        terms: tuple[LossTerm, ...] = (*(task.loss_term for task in model.tasks), *aux)
        weighting = LossWeighting(terms, cfg.loss_weighting, cfg.loss_weights)
        bias = set(model.bias.parameters()) if model.bias is not None else set()
        groups = [
            {"params": [p for p in model.parameters() if p.requires_grad and p not in bias]},
            # A handful of scalars that must travel a logit or two: a faster rate, no decay.
            {"params": list(bias), "weight_decay": 0.0, "lr_scale": BIAS_LR_SCALE},
            # Decay would pull the learned log-variances towards 0, i.e. towards equal weights.
            {"params": list(weighting.parameters()), "weight_decay": 0.0},
        ]
        # fused: one kernel per parameter for the whole update (on CPU too); the default loops
        # over ~35 parameters with ~10 small ops each, 6% of a training step of this model.
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        trainable = nn.ModuleDict({"model": model, "loss_weighting": weighting})
        objective = Objective(model, weighting, aux)
        priors = data.train.targets.priors()
        references = constant_losses(model.tasks, priors, data.valid.targets, aux)
        precision = resolve_precision(cfg.precision)
        # One torch thread only: numpy's BLAS keeps its own threads, which contend with torch's
        # (two threads each: a step 52 -> 129 ms).
        numpy_blas = precision == "fp32" and amd_cpu() and torch.get_num_threads() == 1
        model.set_train_dtype(DTYPES[precision], numpy_blas)
        return cls(
            model=model,
            weighting=weighting,
            trainable=trainable,
            objective=objective,
            step=world.wrap(objective),
            optimizer=optimizer,
            data=data,
            cfg=cfg,
            world=world,
            references=references,
            precision=precision,
            numpy_blas=numpy_blas,
            blas_kernels=numpy_blas_kernels() if numpy_blas else None,
            label=label,
        )


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (x86's AVX512-BF16 or AMX-BF16), from
    Linux's CPU flags: torch has no public call for it. Without, oneDNN emulates bf16 products
    (or torch falls back to plain loops), which the gain measured here does not cover, so
    "auto" stays fp32 there. False where there is no /proc/cpuinfo."""
    return read_host().native_bf16


@functools.cache
def amd_cpu() -> bool:
    """Whether this is an AMD CPU, where the bottom's first layer trains its fp32 products in
    numpy's BLAS (OpenBLAS) rather than torch's (MKL, which takes a slower path there; see
    `layers._Product`). A training step of the default PLE on an AMD EPYC without
    AVX-512 (Zen 2), one thread: 59.0 -> 54.1 and 58.5 -> 53.1 ms (medians, one process
    alternating the two every five steps, 400 steps each); the first layer's products 33.4 ->
    28.4 ms of it."""
    return read_host().amd


def resolve_precision(precision: str) -> str:
    """`train.precision`: "auto" is bf16 on a CPU with bf16 dot products, else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16() else "fp32"


def thread_count() -> int:
    return threads_per_process()


@contextmanager
def deterministic(seed: int, threads: int | None = None) -> Iterator[None]:
    """Fixed seeds, deterministic kernels and a fixed thread count (`threads`, default
    `thread_count()`); restored afterwards.

    Deterministic mode would also fill every new tensor with NaN (a pass over each activation
    and gradient buffer, to expose reads of uninitialised memory); the model reads none, so
    that fill is off."""
    fill = torch.utils.deterministic  # type: ignore[attr-defined]
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.get_num_threads(),
        fill.fill_uninitialized_memory,
    )
    torch.use_deterministic_algorithms(True)
    fill.fill_uninitialized_memory = False
    torch.set_num_threads(threads or thread_count())
    # numpy's BLAS (the first layer's fp32 products on an AMD CPU) on as many threads as torch.
    blas = threadpool_limits(limits=torch.get_num_threads(), user_api="blas")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        # First: restoring numpy's OpenBLAS also sets the OpenMP thread count torch reads.
        blas.restore_original_limits()
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])
        fill.fill_uninitialized_memory = previous[2]


def set_learning_rate(optimizer: torch.optim.Optimizer, cfg: TrainConfig, progress: float) -> None:
    """The scheduled rate at `progress` (0 at the first step, 1 after the last epoch); a pure
    function of the step, so a resumed run follows the same schedule with no scheduler state."""
    scale = 1.0
    if cfg.lr_schedule == "cosine":
        scale = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr * scale * group.get("lr_scale", 1.0)


def clip_gradients(parameters: Iterable[nn.Parameter], max_norm: float) -> None:
    """`nn.utils.clip_grad_norm_`, without its pass over every gradient when none is clipped:
    it multiplies them all by the clamped coefficient, 1.0 unless the norm exceeds `max_norm`,
    to spare a GPU a host sync; on CPU the check is free, and x * 1.0 is x, so the gradients
    are bit for bit the same."""
    with_grad = [p for p in parameters if p.grad is not None]
    if not with_grad:
        return
    total = nn.utils.get_total_norm([p.grad for p in with_grad])
    if float(max_norm / (total + 1e-6)) < 1.0:  # clip_grad_norm_'s coefficient and clamp
        nn.utils.clip_grads_with_norm_(with_grad, max_norm, total)


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def _train_epoch(session: Session, epoch: int) -> dict[str, float]:
    """One pass over the shuffled train split; mean batch loss and row-weighted term means."""
    model, split, cfg, world = session.model, session.data.train, session.cfg, session.world
    model.train()
    tally, total, n_batches = LossTally(), 0.0, 0
    steps = -(-len(split) // cfg.batch_size)  # batches per epoch
    # The bar's rate is samples/s; disable=None hides it when stderr is not a terminal.
    bar = tqdm(total=len(split), unit="sample", unit_scale=True, desc=f"epoch {epoch}",
               disable=None if world.is_main else True, leave=False)  # fmt: skip
    for step, rows in enumerate(shuffled_batches(len(split), cfg.batch_size)):
        set_learning_rate(session.optimizer, cfg, (epoch - 1 + step / steps) / cfg.epochs)
        loss, losses = session.step(*split.batch(world.shard(rows)))
        session.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP: gradients averaged over the ranks here
        clip_gradients(session.trainable.parameters(), GRAD_CLIP_NORM)
        session.optimizer.step()
        tally.add(losses)
        total, n_batches = total + loss.item(), n_batches + 1
        bar.update(len(rows))
    bar.close()
    return _epoch_means(world, tally, total, n_batches)


def _epoch_means(world: World, tally: LossTally, total: float, n_batches: int) -> dict[str, float]:
    """The epoch's train losses over every rank's rows."""
    terms = sorted(tally.sums)
    sums = world.sum(
        [total, n_batches, *(tally.sums[t] for t in terms), *(tally.counts[t] for t in terms)]
    )
    total, n_batches, n_terms = sums[0], sums[1], len(terms)
    means = {
        f"train_{term}": sums[2 + i] / max(sums[2 + n_terms + i], 1) for i, term in enumerate(terms)
    }
    return {"train_loss": total / max(n_batches, 1), **means}


@torch.no_grad()
def evaluate_losses(objective: Objective, split: Split) -> dict[str, float]:
    """Row-weighted mean of each loss term over a whole split, in eval mode."""
    objective.model.eval()
    tally = LossTally()
    for rows in ordered_batches(len(split), EVAL_BATCH):
        inputs, targets = split.batch(rows)
        tally.add(objective.losses(objective.model(inputs), targets))
    return tally.means()


def _run_epoch(session: Session, epoch: int) -> dict[str, float]:
    started = time.perf_counter()
    torch.manual_seed(_epoch_seed(session.cfg.seed, epoch))
    row: dict[str, float] = {"epoch": epoch, **_train_epoch(session, epoch)}
    seconds = time.perf_counter() - started
    valid = evaluate_losses(session.objective, session.data.valid)  # the same on every rank
    # Epochs are compared on a fixed scale (the static weights) even when the training weights
    # are learned, so early stopping does not chase the moving uncertainty weights.
    static, references = session.weighting.static, session.references
    row["valid_loss"] = sum(static[term] * value for term, value in valid.items())
    row["valid_score"] = sum(
        static[term] * value / max(references[term], 1e-12) for term, value in valid.items()
    )
    row.update({f"valid_{term}": value for term, value in valid.items()})
    row.update({f"weight_{term}": w for term, w in session.weighting.weights().items()})
    row.update({"train_seconds": seconds, "samples_per_s": len(session.data.train) / seconds})
    _log_epoch(session, row)
    return row


def _log_epoch(session: Session, row: dict[str, float]) -> None:
    """One plain line per epoch (a log file shows it, not only a terminal's bar)."""
    if not session.world.is_main:
        return
    epoch, total = int(row["epoch"]), session.cfg.epochs
    eta = (total - epoch) * row["train_seconds"]  # the epochs left, at this one's pace
    prefix = f"{session.label}: " if session.label else ""
    print(
        f"{prefix}epoch {epoch}/{total}: train_loss {row['train_loss']:.4f} valid_loss "
        f"{row['valid_loss']:.4f} valid_score {row['valid_score']:.4f}; "
        f"{row['samples_per_s']:,.0f} samples/s, {row['train_seconds']:.1f} s, ETA {eta:.0f} s",
        flush=True,
    )


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
        value = row[SELECTION_COLUMNS[session.cfg.selection]]
        if value < state.best_valid_loss:  # NaN never improves
            state.best_epoch, state.best_valid_loss = state.epoch, value
            state.bad_epochs = 0
            best = _snapshot(session.trainable)
        else:
            state.bad_epochs += 1
            state.stopped_early = state.bad_epochs >= session.cfg.patience
        if session.world.is_main:
            save_checkpoint(root, state, session.trainable, best, session.optimizer)
    return state, best


def _clear_outputs(out_dir: Path) -> None:
    """Everything goes: no stale file of an earlier run survives."""
    out_dir.mkdir(parents=True, exist_ok=True)
    foreign = [name for name in PROJECT_MARKERS if (out_dir / name).exists()]
    if foreign:  # a mistyped out_dir must not wipe a project
        raise ValueError(f"refusing to clear {out_dir}: it holds {foreign}, not a model")
    for child in out_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _resume_or_start(
    session: Session, root: Path, run_fingerprint: str
) -> tuple[TrainState, dict[str, torch.Tensor], int | None]:
    path = latest_checkpoint(root, run_fingerprint) if root.is_dir() else None
    session.world.barrier()  # every rank has chosen before rank 0 deletes anything
    if session.world.is_main:  # another run's checkpoints (other data or config) are stale
        for other in root.parent.glob("*") if root.parent.is_dir() else []:
            if other != root and other.is_dir():
                shutil.rmtree(other, ignore_errors=True)
    if path is None:
        if session.world.is_main:
            shutil.rmtree(root, ignore_errors=True)
        return TrainState(run_fingerprint), _snapshot(session.trainable), None
    state, best = load_checkpoint(path, session.trainable, session.optimizer)
    return state, best, state.epoch


def _write_outputs(session: Session, state: TrainState, out_dir: Path, data_dir: Path) -> None:
    save_model(out_dir, session.model, session.data.spec)
    shutil.copyfile(data_dir / SCHEMA_FILE, out_dir / SCHEMA_FILE)  # its feature service
    curve = pd.DataFrame(state.history).drop(columns=list(TIMING_COLUMNS), errors="ignore")
    curve.to_csv(out_dir / CURVE_FILE, index=False)
    best_row = next((r for r in state.history if r["epoch"] == state.best_epoch), {})
    summary = {
        "best_epoch": state.best_epoch,
        "selection": session.cfg.selection,
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
        "batch_size": session.cfg.batch_size,
        "lr": session.cfg.lr,
        "threads": torch.get_num_threads(),
        "precision": session.precision,
        "numpy_blas": session.numpy_blas,
        "numpy_blas_kernels": session.blas_kernels,
        "processes": session.world.size,
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))


def _write_timings(state: TrainState, file: Path, seconds: float) -> None:
    rows = [
        {"epoch": r["epoch"], **{k: r[k] for k in TIMING_COLUMNS if k in r}} for r in state.history
    ]
    file.parent.mkdir(parents=True, exist_ok=True)
    record = {"seconds": seconds, "host": str(read_host()), "epochs": rows}
    file.write_text(json.dumps(record, indent=2) + "\n")


def _run_fingerprint(
    model_cfg: ModelConfig, train_cfg: TrainConfig, data_dir: Path, precision: str
) -> str:
    """What a checkpoint may be resumed by: the configs and data, with `train.precision` the
    `precision` that runs (the session's: "auto" is bf16 on one CPU and fp32 on another, so a
    bf16 run's checkpoint must not be finished in fp32, and "auto" and "bf16" on a bf16 CPU
    are one training)."""
    files = [data_dir / "train.parquet", data_dir / "valid.parquet", data_dir / SCHEMA_FILE]
    train_cfg = train_cfg.model_copy(update={"precision": precision})
    configs = (model_cfg.model_dump(mode="json"), train_cfg.model_dump(mode="json"))
    return fingerprint(FORMAT_VERSION, *configs, files=files)


def run(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data_dir: Path,
    out_dir: Path,
    cache_dir: Path,
    *,
    checkpoints: Path | None = None,
    timings: Path | None = None,
    keep_checkpoints: bool = False,
    label: str = "",
    data: TrainingData | None = None,
    threads: int | None = None,
) -> TrainResult:
    """Train on `data_dir/{train,valid}.parquet`, write the best epoch's model to `out_dir`.

    Checkpoints go to `checkpoints/<fingerprint of config and data>/` (default: beside
    `out_dir`), outside the stage's output, which DVC deletes before it reruns a stage: a
    killed run resumes from there, and a stale one (other data or config) is never resumed.
    They are removed after success unless `keep_checkpoints`. Wall-clock timings go to
    `timings`, not to `out_dir`. `label` prefixes the per-epoch log lines. Under torchrun every
    rank runs this. `data`: the data of `data_dir` already loaded for this model (the caller
    loaded it to fill the text cache), not loaded again. `threads`: torch threads for this
    run (default `thread_count()`: half the cores, for a machine that trains two models at
    once; a benchmark of one model alone on an idle machine gives it every core).
    """
    started = time.perf_counter()
    data_dir, out_dir, cache_dir = Path(data_dir), Path(out_dir), Path(cache_dir)
    checkpoints = Path(checkpoints) if checkpoints else out_dir.with_name(f".{out_dir.name}.ckpt")
    with joined() as world, deterministic(train_cfg.seed, threads):
        if world.is_main:
            _clear_outputs(out_dir)
        encoder = build_text_encoder(model_cfg.text) if model_cfg.text.finetune_layers else None
        # A text missing from the cache is encoded by the first process that needs it, and the
        # same text encoded in another batch can differ in its last bits: ranks must not race
        # to encode it. Rank 0 loads (and encodes) first, the others read what it cached.
        if data is None:
            if not world.is_main:
                world.barrier()
            data = load_training_data(model_cfg, data_dir, cache_dir, encoder)
            if world.is_main:
                world.barrier()
        torch.manual_seed(train_cfg.seed)  # the model's init does not depend on data loading
        model = MultiTaskModel(model_cfg, data.spec, encoder)
        model.init_output_biases(data.train.targets.priors())
        session = Session.create(model, train_cfg, data, world, label)
        if world.is_main:
            blas_note = f" in numpy's BLAS ({session.blas_kernels})" if session.numpy_blas else ""
            print(
                f"{label + ': ' if label else ''}training {len(data.train):,} rows, "
                f"{model_cfg.bottom}, {session.precision}{blas_note} (train.precision="
                f"{train_cfg.precision}), {torch.get_num_threads()} thread(s) x {world.size}",
                flush=True,
            )
        fp = _run_fingerprint(model_cfg, train_cfg, data_dir, session.precision)
        root = checkpoints / fp[:16]
        state, best, resumed_from = _resume_or_start(session, root, fp)
        state, best = _fit(session, state, best, root)
        session.trainable.load_state_dict(best)
        seconds = time.perf_counter() - started
        if world.is_main:
            _write_outputs(session, state, out_dir, data_dir)
            if timings is not None:
                _write_timings(state, Path(timings), seconds)
            if not keep_checkpoints:
                shutil.rmtree(root, ignore_errors=True)
                if checkpoints.is_dir() and not any(checkpoints.iterdir()):
                    checkpoints.rmdir()
        world.barrier()  # no rank returns before the model is on disk
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
