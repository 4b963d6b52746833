"""Our model against torch-rechub's MMoE and PLE on one training table: samples/s and test AUC.

Trains, in one process and on the same `--data` (a `build-dataset` output), each bottom of our
model (`params.yaml`'s model and train sections, `--epochs` epochs) and torch-rechub's `MMOE`
and `PLE` with its own `MTLTrainer` and `DataGenerator` (its data loading is part of its cost),
at the same batch size, learning rate, weight decay (AdamW for both), epochs and torch thread
count (`--threads`; default `training.train.thread_count()`, the pipeline's: half the cores).
torch-rechub is the `bench` extra, not a runtime dependency.

What torch-rechub gets: the impression rows of the table, our feature spec's encoding of them
(fitted on the whole train split, as ours is): each categorical column a `SparseFeature`
(vocabulary from train, `embedding_dim` wide), each numeric column a `DenseFeature` (log1p if
skewed, standardized, clipped, 0 where missing), and the query and title embeddings of our frozen
encoder (the text cache, spelling-corrected queries) as one vector `DenseFeature` each. Ids are
left out as ours leaves them out (`model.id_embeddings`). Its two tasks are ctr (click) and
ctcvr (purchase over all impressions); it has no relevance task and no judgement rows. Its
experts, towers and dropout are ours (`n_experts`, `n_shared_experts`, `expert_dims`,
`tower_dims`; PLE with one level, as ours).

seconds/epoch is the training pass alone for both (ours: the loop over encoded tensors;
torch-rechub: `train_one_epoch` over its DataLoader); validation and text loading are not timed.
Test AUCs: ours from `evaluation.evaluate.evaluate_model`, torch-rechub's from its
`MTLTrainer.evaluate` (scikit-learn's roc_auc_score) on the same test impressions.

    .venv/bin/python benchmarks/bench_peer.py --data data/training --cache data/cache
        [--epochs 1] [--models shared_bottom mmoe ple rechub-mmoe rechub-ple] [--rows 100000]
        [--precision auto|fp32|bf16] [--threads N] [--repeat N]

`--repeat N` trains every model N times, ours first in odd runs and torch-rechub first in even
ones, and prints each run's ratio and their median: this machine's speed drifts by up to a
third over an hour, and one run's ratio carries it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from mtlrec.config import ModelConfig, Params, load_params
from mtlrec.evaluation.evaluate import evaluate_model
from mtlrec.host import numpy_blas_kernels, read_host
from mtlrec.model.spec import FeatureSpec, read_schema
from mtlrec.model.text import build_text_table
from mtlrec.training.data import SCHEMA_FILE
from mtlrec.training.train import SUMMARY_FILE, run, thread_count

OURS = ("shared_bottom", "mmoe", "ple")
RECHUB = ("rechub-mmoe", "rechub-ple")
BASELINE = ("torch-rechub", "mmoe")  # the ratio's denominator: (model, bottom)
LABELS = ("click", "purchase")  # torch-rechub's two tasks: ctr, ctcvr


@dataclass(frozen=True)
class Result:
    model: str
    bottom: str
    tasks: str
    threads: int
    precision: str  # of the wide products while training: torch-rechub's is fp32
    rows: int
    epochs: int
    seconds_per_epoch: float
    auc_ctr: float | None
    auc_ctcvr: float | None
    run: int = 1  # which of `--repeat` runs

    @property
    def samples_per_s(self) -> float:
        return self.rows / self.seconds_per_epoch


@dataclass
class Split:
    """One split's impression rows as torch-rechub reads them: named columns and (N, 2) labels."""

    x: dict[str, np.ndarray]
    y: np.ndarray


# --- library-agnostic helpers -------------------------------------------------------------------


def subsample(data: Path, rows: int | None, work: Path, seed: int = 0) -> Path:
    """`data` itself, or a copy whose train split is `rows` random rows of it (valid, test and
    the schema unchanged), so a quick check measures the same test rows."""
    if rows is None:
        return data
    out = work / "data"
    out.mkdir(parents=True)
    train = pd.read_parquet(data / "train.parquet")
    if rows < len(train):
        train = train.sample(rows, random_state=seed).sort_index().reset_index(drop=True)
    train.to_parquet(out / "train.parquet")
    for name in ("valid.parquet", "test.parquet", SCHEMA_FILE):
        shutil.copyfile(data / name, out / name)
    return out


def fit_spec(data: Path, cfg: ModelConfig) -> FeatureSpec:
    """The feature spec our model fits on the train split (the same schema, ids as configured)."""
    schema = read_schema(data / SCHEMA_FILE)
    if not cfg.id_embeddings:
        schema = [feature for feature in schema if feature.kind != "id"]
    train = pd.read_parquet(data / "train.parquet")
    return FeatureSpec.fit(schema, train, cfg.hash_buckets, cfg.text.spell_correct)


def impressions(data: Path, name: str) -> pd.DataFrame:
    frame = pd.read_parquet(data / f"{name}.parquet")
    return frame[frame["source"] == "impression"].reset_index(drop=True)


def named_columns(
    spec: FeatureSpec, cfg: ModelConfig, frame: pd.DataFrame, cache: Path
) -> dict[str, np.ndarray]:
    """One array per input column: categorical codes (N,), scaled numerics (N,) and each text's
    frozen-encoder embedding (N, D), from our spec's encoding and text cache."""
    encoded = spec.encode(frame)
    columns = {name: encoded.fields[:, i] for i, name in enumerate(spec.field_names)}
    # The dense block starts with the numeric values (then their missing flags).
    columns |= {n.name: encoded.dense[:, i] for i, n in enumerate(spec.numerics)}
    table = build_text_table(encoded.strings, cfg.text, cache)
    assert table.embeddings is not None  # frozen encoder: embeddings, not tokens
    embeddings = table.embeddings.numpy()  # (U, D), row 0 the null text
    columns |= {name: embeddings[encoded.text_codes[:, t]] for t, name in enumerate(spec.texts)}
    return columns


def labels(frame: pd.DataFrame) -> np.ndarray:
    return frame[list(LABELS)].to_numpy(dtype=np.float32)  # (N, 2) click, purchase


def mean_epoch_seconds(history: list[dict[str, float]]) -> float:
    return sum(row["train_seconds"] for row in history) / len(history)


def fmt_auc(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def ratios(results: list[Result], baseline: tuple[str, str] = BASELINE) -> dict[int, float]:
    """Each result's samples/s over the baseline's of the same run (by index in `results`):
    models of one run train minutes apart, runs may be an hour apart."""
    base = {r.run: r.samples_per_s for r in results if (r.model, r.bottom) == baseline}
    return {i: r.samples_per_s / base[r.run] for i, r in enumerate(results) if r.run in base}


def markdown_table(results: list[Result], baseline: tuple[str, str] = BASELINE) -> str:
    ratio_of = ratios(results, baseline)
    head = ["run", "model", "bottom", "tasks", "threads", "precision", "train rows", "epochs",
            "s/epoch", "samples/s", f"ratio to {' '.join(baseline)}", "test AUC ctr",
            "test AUC ctcvr"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(results):
        ratio = f"{ratio_of[i]:.2f}" if i in ratio_of else "-"
        cells = [str(r.run), r.model, r.bottom, r.tasks, str(r.threads), r.precision,
                 f"{r.rows:,}", str(r.epochs), f"{r.seconds_per_epoch:.1f}",
                 f"{r.samples_per_s:,.0f}", ratio, fmt_auc(r.auc_ctr),
                 fmt_auc(r.auc_ctcvr)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_summary(results: list[Result], baseline: tuple[str, str] = BASELINE) -> list[str]:
    """One line per other model: its ratio in each run and their median."""
    ratio_of = ratios(results, baseline)
    by_model: dict[tuple[str, str], list[float]] = {}
    for i, r in enumerate(results):
        if i in ratio_of and (r.model, r.bottom) != baseline:
            by_model.setdefault((r.model, r.bottom), []).append(ratio_of[i])
    return [
        f"{' '.join(key)}: ratio to {' '.join(baseline)} "
        f"{', '.join(f'{v:.2f}' for v in values)} (median {np.median(values):.2f})"
        for key, values in by_model.items()
    ]


# --- our model ----------------------------------------------------------------------------------


def train_ours(
    params: Params, bottom: str, data: Path, cache: Path, work: Path, threads: int, run_no: int = 1
) -> Result:
    model = params.model.model_copy(update={"bottom": bottom})
    epochs = params.train.epochs
    train = params.train.model_copy(update={"patience": epochs})  # no early stop
    out = work / bottom
    result = run(model, train, data, out, cache, threads=threads)
    summary = json.loads((out / SUMMARY_FILE).read_text())
    report = evaluate_model(params.evaluate, out, data, None, cache)
    return Result(
        model="ours",
        bottom=bottom,
        tasks=", ".join(model.tasks),
        threads=summary["threads"],
        precision=summary["precision"] + (" (numpy BLAS)" if summary.get("numpy_blas") else ""),
        rows=summary["n_train_rows"],
        epochs=result.epochs_run,
        seconds_per_epoch=mean_epoch_seconds(result.history),
        auc_ctr=report.get("ctr", {}).get("auc"),
        auc_ctcvr=report.get("ctcvr", {}).get("auc"),
        run=run_no,
    )


# --- torch-rechub -------------------------------------------------------------------------------


def rechub_splits(
    data: Path, spec: FeatureSpec, cfg: ModelConfig, cache: Path, batch_size: int
) -> dict[str, Split]:
    splits = {}
    for name in ("train", "valid", "test"):
        frame = impressions(data, name)
        if name == "train" and len(frame) % batch_size == 1:
            # Its MLPs' BatchNorm fails on a last batch of one row (no drop_last option).
            frame = frame.iloc[:-1]
        splits[name] = Split(named_columns(spec, cfg, frame, cache), labels(frame))
    return splits


def rechub_features(split: Split, spec_sizes: dict[str, int], embedding_dim: int) -> list:
    """`SparseFeature` for the categoricals, `DenseFeature` (1 wide, or D for a text vector)."""
    from torch_rechub.basic.features import DenseFeature, SparseFeature

    features: list = []
    for name, values in split.x.items():
        if name in spec_sizes:
            features.append(SparseFeature(name, spec_sizes[name], embed_dim=embedding_dim))
        else:
            width = 1 if values.ndim == 1 else values.shape[1]
            features.append(DenseFeature(name, embed_dim=width))
    return features


def rechub_model(name: str, features: list, cfg: ModelConfig) -> torch.nn.Module:
    from torch_rechub.models.multi_task import MMOE, PLE

    tasks = ["classification"] * len(LABELS)
    experts = {"dims": list(cfg.expert_dims), "dropout": cfg.dropout}
    towers = [{"dims": list(cfg.tower_dims), "dropout": cfg.dropout} for _ in tasks]
    if name == "rechub-mmoe":
        return MMOE(features, tasks, cfg.n_experts, expert_params=experts, tower_params_list=towers)
    return PLE(features, tasks, n_level=1, n_expert_specific=cfg.n_experts,
               n_expert_shared=cfg.n_shared_experts, expert_params=experts,
               tower_params_list=towers)  # fmt: skip


def timed(fn: Callable, seconds: list[float]) -> Callable:
    """`fn`, appending each call's wall-clock seconds to `seconds`."""

    def wrapper(*args: object, **kwargs: object) -> object:
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds.append(time.perf_counter() - started)
        return out

    return wrapper


def train_rechub(
    name: str,
    params: Params,
    splits: dict[str, Split],
    sizes: dict[str, int],
    work: Path,
    threads: int,
    run_no: int = 1,
) -> Result:
    """torch-rechub's documented loop: DataGenerator's loaders, MTLTrainer.fit, evaluate."""
    from torch_rechub.trainers import MTLTrainer, mtl_trainer
    from torch_rechub.utils.data import DataGenerator

    cfg, train = params.model, params.train
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    # Its progress bars, like ours, only on a terminal (disable=None): in a log they were a
    # line a second, hundreds of KB.
    original = mtl_trainer.tqdm  # the tqdm module, whose `tqdm.tqdm` it calls
    mtl_trainer.tqdm = SimpleNamespace(tqdm=partial(original.tqdm, disable=None))
    try:
        torch.manual_seed(train.seed)
        features = rechub_features(splits["train"], sizes, cfg.embedding_dim)
        model = rechub_model(name, features, cfg)
        loaders = DataGenerator(splits["train"].x, splits["train"].y).generate_dataloader(
            x_val=splits["valid"].x, y_val=splits["valid"].y,
            x_test=splits["test"].x, y_test=splits["test"].y, batch_size=train.batch_size,
        )  # fmt: skip
        (out := work / name).mkdir(parents=True)
        trainer = MTLTrainer(
            model, task_types=["classification"] * len(LABELS), optimizer_fn=torch.optim.AdamW,
            optimizer_params={"lr": train.lr, "weight_decay": train.weight_decay},
            n_epoch=train.epochs, earlystop_patience=train.epochs, device="cpu",
            model_path=str(out),
        )  # fmt: skip
        seconds: list[float] = []
        trainer.train_one_epoch = timed(trainer.train_one_epoch, seconds)
        trainer.fit(loaders[0], loaders[1])
        threads = torch.get_num_threads()
        auc_ctr, auc_ctcvr = trainer.evaluate(trainer.model, loaders[2])
    finally:
        torch.set_num_threads(previous)
        mtl_trainer.tqdm = original
    return Result("torch-rechub", name.removeprefix("rechub-"), "ctr, ctcvr", threads, "fp32",
                  len(splits["train"].y),
                  len(seconds), sum(seconds) / len(seconds), float(auc_ctr),
                  float(auc_ctcvr), run_no)  # fmt: skip


@dataclass
class RechubData:
    """torch-rechub's splits and vocabulary sizes, encoded once for every run."""

    splits: dict[str, Split]
    sizes: dict[str, int]


def rechub_data(params: Params, data: Path, cache: Path) -> RechubData:
    spec = fit_spec(data, params.model)
    splits = rechub_splits(data, spec, params.model, cache, params.train.batch_size)
    return RechubData(splits, dict(zip(spec.field_names, spec.field_sizes, strict=True)))


def one_run(
    args: argparse.Namespace,
    params: Params,
    data: Path,
    rechub: RechubData | None,
    work: Path,
    run_no: int,
) -> list[Result]:
    """Every chosen model once, in `work/run<N>`; odd runs ours first, even runs torch-rechub
    first, so a machine that speeds up or slows down over the runs favours neither."""
    work = work / f"run{run_no}"
    ours: list[Callable[[], Result]] = [
        partial(train_ours, params, b, data, args.cache, work, args.threads, run_no)
        for b in OURS
        if b in args.models
    ]
    theirs: list[Callable[[], Result]] = []
    if rechub is not None:
        theirs = [
            partial(train_rechub, name, params, rechub.splits, rechub.sizes, work, args.threads,
                    run_no)
            for name in RECHUB
            if name in args.models
        ]  # fmt: skip
    if run_no % 2 == 0:
        theirs_done = [job() for job in theirs]
        return [job() for job in ours] + theirs_done  # the table's order: ours, then theirs
    return [job() for job in ours + theirs]


# --- entry point --------------------------------------------------------------------------------


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a mistake is one line, not a traceback)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data/training"))
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--models", nargs="+", choices=[*OURS, *RECHUB], default=[*OURS, *RECHUB])
    parser.add_argument("--rows", type=int, default=None, help="subsample train to this many rows")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                        help="ours: train.precision (default: params.yaml's)")  # fmt: skip
    parser.add_argument("--threads", type=positive, default=thread_count(),
                        help="torch threads for every model (default: %(default)s, half the "
                        "cores, as the pipeline trains)")  # fmt: skip
    parser.add_argument("--repeat", type=positive, default=1,
                        help="train every model this many times, alternating which library "
                        "goes first; a ratio per run and their median")  # fmt: skip
    args = parser.parse_args()
    params = load_params(args.params)
    params = params.model_copy(
        update={"train": params.train.model_copy(update={"epochs": args.epochs})}
    )
    if args.precision is not None:
        train = params.train.model_copy(update={"precision": args.precision})
        params = params.model_copy(update={"train": train})
    started = time.perf_counter()
    rechub = any(name in args.models for name in RECHUB)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = subsample(args.data, args.rows, work)
        loaded = rechub_data(params, data, args.cache) if rechub else None
        results = [
            result
            for run_no in range(1, args.repeat + 1)
            for result in one_run(args, params, data, loaded, work, run_no)
        ]
    print(markdown_table(results))
    if args.repeat > 1:
        print("\n" + "\n".join(ratio_summary(results)))
    print(
        f"\n{args.epochs} epoch(s) each, {time.perf_counter() - started:.0f} s in all (data and "
        "text loading, validation and test included). Ours trains ctr, cvr (ESMM) and relevance "
        "on impression and judgement rows; torch-rechub trains ctr and ctcvr on the impression "
        f"rows (it has no relevance task). torch {torch.__version__}"
        + (f", torch-rechub {version('torch-rechub')}." if rechub else ".")
    )
    print(f"host: {read_host()}")
    print(f"numpy's BLAS: {numpy_blas_kernels()}")  # fp32 on an AMD CPU multiplies there


if __name__ == "__main__":
    main()
