"""Training throughput per bottom: samples/s and seconds per epoch on this machine.

Trains the model of `params.yaml` (its features, widths, text settings) with each bottom for
`--epochs` epochs on a training set: `--data` (a `build-dataset` output, e.g. the default
pipeline's data/training) or, without it, the synthetic table of `training/synthetic.py` at the
default size (500,000 impressions). The text embeddings come from `--cache` (encoded once, then
read), so the numbers are the training loop's: batches, forward, backward, AdamW. Validation and
data loading are not timed. With `--nproc 2` it also times torchrun data-parallel training.

    .venv/bin/python benchmarks/bench_training.py [--data data/training] [--cache data/cache]
        [--bottoms shared_bottom mmoe ple] [--epochs 1] [--nproc 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from mtlrec.config import load_params
from mtlrec.host import numpy_blas_kernels, read_host
from mtlrec.training.synthetic import write_synthetic_dataset
from mtlrec.training.train import run

DEFAULT_IMPRESSIONS = 500_000  # about half the default simulation's training days (10 x 100,000)
DEFAULT_JUDGMENTS = 4_800


def time_bottom(args: argparse.Namespace, bottom: str, data: Path, work: Path) -> dict:
    params = load_params(args.params)
    model = params.model.model_copy(update={"bottom": bottom})
    train = params.train.model_copy(update={"epochs": args.epochs, "patience": args.epochs})
    result = run(model, train, data, work / bottom, args.cache)
    seconds = sum(row["train_seconds"] for row in result.history) / len(result.history)
    rows = json.loads((work / bottom / "train_summary.json").read_text())
    return {
        "bottom": bottom,
        "processes": 1,
        "rows": rows["n_train_rows"],
        "params": rows["n_parameters"],
        "s_per_epoch": seconds,
        "samples_per_s": rows["n_train_rows"] / seconds,
    }


def time_torchrun(args: argparse.Namespace, bottom: str, data: Path, work: Path) -> dict:
    """The same training under `mtlrec train --nproc N`; rank 0 writes the timings."""
    raw = yaml.safe_load(Path(args.params).read_text())
    raw["model"]["bottom"] = bottom
    raw["train"].update({"epochs": args.epochs, "patience": args.epochs})
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    out = work / f"{bottom}-ddp"
    command = [sys.executable, "-m", "mtlrec.cli", "--params", str(params), "train"]
    command += ["--data", str(data), "--out", str(out), "--cache", str(args.cache)]
    timings = work / f"{bottom}-ddp-timings.json"
    command += ["--timings", str(timings), "--nproc", str(args.nproc)]
    subprocess.run(command, check=True, capture_output=True)
    summary = json.loads((out / "train_summary.json").read_text())
    epochs = json.loads(timings.read_text())["epochs"]  # rank 0's wall-clock seconds per epoch
    seconds = sum(row["train_seconds"] for row in epochs) / len(epochs)
    return {
        "bottom": bottom,
        "processes": args.nproc,
        "rows": summary["n_train_rows"],
        "params": summary["n_parameters"],
        "s_per_epoch": seconds,
        "samples_per_s": summary["n_train_rows"] / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, default=None, help="default: synthetic, same size")
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--bottoms", nargs="+", default=["shared_bottom", "mmoe", "ple"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--nproc", type=int, default=1, help="also time torchrun with N processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = args.data or write_synthetic_dataset(
            work / "data", DEFAULT_IMPRESSIONS, DEFAULT_JUDGMENTS, n_users=3000, n_items=1200
        )
        started = time.perf_counter()
        results = [time_bottom(args, bottom, data, work) for bottom in args.bottoms]
        if args.nproc > 1:
            results += [time_torchrun(args, bottom, data, work) for bottom in args.bottoms]
        total = time.perf_counter() - started
    print(f"{'bottom':<14} {'procs':>5} {'train rows':>10} {'params':>9} {'s/epoch':>8} "
          f"{'samples/s':>10}")  # fmt: skip
    for r in results:
        print(f"{r['bottom']:<14} {r['processes']:>5} {r['rows']:>10,} {r['params']:>9,} "
              f"{r['s_per_epoch']:>8.1f} {r['samples_per_s']:>10,.0f}")  # fmt: skip
    print(f"({args.epochs} epoch(s) each; {total:.0f}s in all, data and text loading included)")
    print(f"host: {read_host()}")
    print(f"numpy's BLAS: {numpy_blas_kernels()}")


if __name__ == "__main__":
    main()
