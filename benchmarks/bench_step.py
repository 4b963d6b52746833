"""Where a training step's time goes: its phases, then its kernels op by op.

Builds the challenger of `params.yaml` on a training set (`--data`, a `build-dataset` output such
as the default pipeline's data/training; texts from `--cache`), trains `--warmup` steps, then
times `--steps` steps phase by phase (the batch's assembly, forward with the losses, backward,
gradient clipping, the optimizer) and `--op-steps` more kernel by kernel: a `TorchDispatchMode`
times each aten call the step makes, forward and backward, and the table sums them per op and
input shapes. Timing each kernel puts Python between kernels, which costs them some cache:
their sum came to about the step's untimed length (36.2 against 35.8 ms, the default PLE at
2,048 rows, Zen 4, one thread), so read the table for proportions. Why not `torch.profiler`:
its self times of small elementwise ops were up to 7x what timing each kernel gives (a
(2,048, 10, 64) product: 2.15 against 0.31 ms).

    .venv/bin/python benchmarks/bench_step.py --data data/training [--cache data/cache]
        [--batch-size 2048] [--threads 1] [--precision auto] [--steps 100] [--ops 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mtlrec.config import load_params
from mtlrec.host import numpy_blas_kernels, read_host
from mtlrec.model.multitask import MultiTaskModel
from mtlrec.training.data import load_training_data
from mtlrec.training.distributed import World
from mtlrec.training.train import GRAD_CLIP_NORM, Session, clip_gradients, deterministic

PHASES = ("batch", "forward", "backward", "clip", "optimizer")
SHAPES_WIDTH = 80  # characters of the shapes column (the optimizer takes lists of every weight)


class KernelTimes(TorchDispatchMode):
    """Seconds and calls per (op, input shapes) of every aten call made under it."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        key = f"{func.overloadpacket.__name__} {_shapes(args)}"
        self.seconds[key] += time.perf_counter() - started
        self.calls[key] += 1
        return out


def _shapes(args: tuple) -> str:
    shapes = []
    for arg in args:
        if isinstance(arg, torch.Tensor):
            shapes.append(tuple(arg.shape))
        elif isinstance(arg, list | tuple) and arg and isinstance(arg[0], torch.Tensor):
            shapes.append([tuple(t.shape) for t in arg[:4]])
    text = str(shapes)
    return text if len(text) <= SHAPES_WIDTH else text[: SHAPES_WIDTH - 3] + "..."


def _step(session: Session, rows: torch.Tensor, clock: Callable[[str], None]) -> None:
    """One training step as `train._train_epoch` takes it, calling `clock` after each phase."""
    batch = session.data.train.batch(rows)
    clock("batch")
    loss, _ = session.step(*batch)
    clock("forward")
    session.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clock("backward")
    clip_gradients(session.trainable.parameters(), GRAD_CLIP_NORM)
    clock("clip")
    session.optimizer.step()
    loss.item()
    clock("optimizer")


@contextmanager
def training_session(
    args: argparse.Namespace, n_steps: int
) -> Iterator[tuple[Session, list[torch.Tensor]]]:
    """The challenger of `args.params` (`--precision`, `--batch-size` applied) on `args.data`,
    ready to train under `deterministic` (`--threads`), and the rows of `n_steps` batches."""
    params = load_params(args.params)
    update: dict[str, object] = {}
    if args.precision:
        update["precision"] = args.precision
    train_cfg = params.train.model_copy(update=update)
    batch_size = args.batch_size or train_cfg.batch_size
    with deterministic(train_cfg.seed, args.threads):
        data = load_training_data(params.model, args.data, args.cache, None)
        model = MultiTaskModel(params.model, data.spec)
        model.init_output_biases(data.train.targets.priors())
        session = Session.create(model, train_cfg, data, World())
        model.train()
        # Its own generator: the same batches whatever the model's initialisation drew
        # (bench_ab.py compares two codes).
        seed = torch.Generator().manual_seed(train_cfg.seed)
        order = torch.randperm(len(data.train), generator=seed)
        yield session, [order[(i * batch_size) % len(order) :][:batch_size] for i in range(n_steps)]


def measure(args: argparse.Namespace) -> tuple[Session, dict[str, float], KernelTimes, int]:
    with training_session(args, args.warmup + args.steps + args.op_steps) as (session, batches):
        batch_size = len(batches[0])
        phases: dict[str, list[float]] = {phase: [] for phase in PHASES}
        for rows in batches[: args.warmup]:
            _step(session, rows, lambda phase: None)
        for rows in batches[args.warmup : args.warmup + args.steps]:
            last = [time.perf_counter()]

            def clock(phase: str, last: list[float] = last) -> None:
                now = time.perf_counter()
                phases[phase].append(now - last[0])
                last[0] = now

            _step(session, rows, clock)
        kernels = KernelTimes()
        with kernels:
            for rows in batches[args.warmup + args.steps :]:
                _step(session, rows, lambda phase: None)
    medians = {phase: statistics.median(times) for phase, times in phases.items()}
    return session, medians, kernels, batch_size


def print_tables(
    args: argparse.Namespace,
    session: Session,
    medians: dict[str, float],
    kernels: KernelTimes,
    batch_size: int,
) -> None:
    step = sum(medians.values())
    print(f"{session.model.cfg.bottom}, {batch_size:,} rows a step, {session.precision}, "
          f"{args.threads} thread(s); medians of {args.steps} steps")  # fmt: skip
    print("| phase | ms |\n|---|---|")
    for phase, seconds in medians.items():
        print(f"| {phase} | {seconds * 1e3:.2f} |")
    print(f"| step | {step * 1e3:.2f} ({batch_size / step:,.0f} samples/s) |")
    n = args.op_steps
    if n > 0:  # --op-steps 0: the phases only
        total = sum(kernels.seconds.values()) / n
        print(f"\nkernels op by op, means of {n} steps: {total * 1e3:.2f} ms a step in "
              f"{sum(kernels.calls.values()) / n:.0f} calls")  # fmt: skip
        print("| ms a step | calls a step | op | input shapes |\n|---|---|---|---|")
        for key, seconds in kernels.seconds.most_common(args.ops):
            op, shapes = key.split(" ", 1)
            print(f"| {seconds / n * 1e3:.3f} | {kernels.calls[key] / n:g} | {op} | {shapes} |")
    host = read_host()
    print(f"host: {host}")
    print(f"numpy's BLAS: {numpy_blas_kernels()}")


def add_session_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments `training_session` reads, and `--warmup`."""
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, required=True, help="a build-dataset output")
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--batch-size", type=int, default=None, help="default: train.batch_size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default=None, help="default: train.precision")
    parser.add_argument("--warmup", type=int, default=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_session_arguments(parser)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--op-steps", type=int, default=20, help="0: no op table")
    parser.add_argument("--ops", type=int, default=30, help="rows of the op table")
    args = parser.parse_args()
    print_tables(args, *measure(args))


if __name__ == "__main__":
    main()
