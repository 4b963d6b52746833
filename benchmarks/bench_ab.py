"""A training step of the working tree's code against a git revision's, side by side in one run.

Trains the challenger of `params.yaml` twice at once, each in its own process with its own
imports: the working tree's `src/` and the `src/` of `--against REV` (`git archive`, into a
temporary folder). The same seed, weights and batches (`bench_step.training_session`). The parent
lets one process at a time take `--steps` steps, alternating which goes first each round, for
`--rounds` rounds, and prints each side's median step and the rounds' paired differences with a
bootstrap interval (over rounds: with a handful of them it means little; 30 take ~40 s at the
default 2,048 rows).

Why: this machine's speed drifts by 10-20% within an hour, so two benchmark runs one after the
other cannot tell a change of 1-2% from the drift; steps that take turns every few seconds share
it. (An op table or a kernel timed alone cannot tell either: at stop 44 the gathered blocks'
products in numpy's BLAS gained 1.3 ms alone and 0.2-0.3 ms in the step.) REV's code must have the
training API `bench_step.training_session` calls (stops 43 and 44 have it).

    .venv/bin/python benchmarks/bench_ab.py --against HEAD --data data/training
        [--cache data/cache] [--precision auto] [--batch-size N] [--threads 1]
        [--rounds 30] [--steps 10] [--warmup 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import IO

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
BOOTSTRAP = 2000


def export_src(project: Path, rev: str, into: Path) -> Path:
    """`rev`'s `src/` under `into`; its path."""
    archive = subprocess.run(["git", "-C", str(project), "archive", rev, "src"],
                             capture_output=True, check=False)  # fmt: skip
    if archive.returncode != 0:
        raise SystemExit(f"git archive {rev}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def child(args: argparse.Namespace, protocol: IO[str]) -> None:
    """One side: build the session, take `--warmup` steps, then per line read from stdin (a step
    count) take that many steps and write their seconds as one line to `protocol`."""
    from bench_step import _step, training_session  # with this side's `src` first on the path

    with training_session(args, args.warmup + args.rounds * args.steps) as (session, batches):
        for rows in batches[: args.warmup]:
            _step(session, rows, lambda phase: None)
        print(len(batches[0]), flush=True, file=protocol)
        at = args.warmup
        for line in sys.stdin:
            seconds = []
            for rows in batches[at : at + int(line)]:
                started = time.perf_counter()
                _step(session, rows, lambda phase: None)
                seconds.append(time.perf_counter() - started)
            at += int(line)
            print(" ".join(f"{s:.6f}" for s in seconds), flush=True, file=protocol)


def _start(args: argparse.Namespace, src: Path) -> subprocess.Popen[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", *sys.argv[1:]]
    paths = [str(src), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}  # `src` before the installed one
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip


def _read(process: subprocess.Popen[str], name: str) -> str:
    stdout: IO[str] = process.stdout  # type: ignore[assignment]
    line = stdout.readline()
    if not line:
        raise SystemExit(f"{name}: its process ended (exit code {process.wait()}); see above")
    return line


def run(args: argparse.Namespace) -> dict[str, list[list[float]]]:
    """Each side's step seconds, per round."""
    with tempfile.TemporaryDirectory(prefix="bench_ab_") as tmp:
        rev_src = export_src(PROJECT, args.against, Path(tmp))
        sides = {"here": PROJECT / "src", args.against: rev_src}
        processes = {name: _start(args, src) for name, src in sides.items()}
        try:
            rows = {name: int(_read(p, name)) for name, p in processes.items()}
            print(f"{rows['here']:,} rows a step; "
                  f"{args.rounds} rounds of {args.steps} steps a side")  # fmt: skip
            seconds: dict[str, list[list[float]]] = {name: [] for name in sides}
            for r in range(args.rounds):
                order = list(sides) if r % 2 == 0 else list(reversed(sides))
                for name in order:
                    process = processes[name]
                    process.stdin.write(f"{args.steps}\n")  # type: ignore[union-attr]
                    process.stdin.flush()  # type: ignore[union-attr]
                    seconds[name].append([float(s) for s in _read(process, name).split()])
        finally:
            for process in processes.values():
                process.stdin.close()  # type: ignore[union-attr]
                process.wait()
    return seconds


def print_table(args: argparse.Namespace, seconds: dict[str, list[list[float]]]) -> None:
    here, rev = seconds["here"], seconds[args.against]
    print("| code | median ms a step | mean ms | steps |\n|---|---|---|---|")
    for name, rounds in seconds.items():
        steps = [s for r in rounds for s in r]
        label = "working tree" if name == "here" else name
        print(f"| {label} | {statistics.median(steps) * 1e3:.2f} | "
              f"{statistics.mean(steps) * 1e3:.2f} | {len(steps)} |")  # fmt: skip
    # A round's difference: its medians', the two sides' steps taken seconds apart.
    pairs = zip(here, rev, strict=True)
    diffs = np.array([statistics.median(a) - statistics.median(b) for a, b in pairs])
    rng = np.random.default_rng(0)
    means = rng.choice(diffs, (BOOTSTRAP, len(diffs))).mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975]) * 1e3
    ratio = statistics.median([s for r in here for s in r]) / statistics.median(
        [s for r in rev for s in r]
    )
    print(f"working tree - {args.against}: {diffs.mean() * 1e3:+.2f} ms a step "
          f"[{low:+.2f}, {high:+.2f}] (the rounds' paired differences, mean and 95% bootstrap "
          f"interval); median step ratio {ratio:.3f}")  # fmt: skip


def main() -> None:
    protocol = None
    if "--child" in sys.argv:
        # A side's stdout is the parent's pipe: kept for the protocol's lines, and anything else
        # printed to it (by an import, too) goes to stderr from here on.
        protocol = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
    from bench_step import add_session_arguments  # this script's folder is first on sys.path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="a git revision: HEAD, main~1, a sha")
    add_session_arguments(parser)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10, help="a side's steps a round")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.against == "here":
        parser.error("--against: 'here' names the working tree's side; give a revision")
    if protocol is not None:
        child(args, protocol)
        return
    print_table(args, run(args))


if __name__ == "__main__":
    main()
