"""numpy's BLAS on one thread: the bottoms' first-layer products in a fresh process, before and
after `layers.settle_numpy_blas`.

On an AMD CPU without bf16 products the bottom's first layer trains its fp32 products in numpy's
OpenBLAS (`layers._Product`). On an AMD EPYC Zen 1 a product up to ~300 columns wide ran at a
third of the rate until the process had run a wider one; each row here is measured in its own
new process, so the first column is what a training process saw before the settling product.

    python benchmarks/bench_blas.py [--rows 2048] [--repeat 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

# (name, inner, columns) of the default model's first layer: 313 input columns.
SHAPES = [
    ("ple (default)", 313, 914),
    ("mmoe", 313, 268),
    ("shared_bottom", 313, 128),
]


def _rate(rows: int, inner: int, columns: int, repeat: int) -> float:
    """GFLOP/s of (rows, inner) x (inner, columns) into a preallocated result."""
    a = np.random.default_rng(0).standard_normal((rows, inner), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((inner, columns), dtype=np.float32)
    out = np.empty((rows, columns), np.float32)
    np.matmul(a, b, out=out)
    start = time.perf_counter()
    for _ in range(repeat):
        np.matmul(a, b, out=out)
    return 2 * rows * inner * columns * repeat / (time.perf_counter() - start) / 1e9


def _child(rows: int, inner: int, columns: int, repeat: int) -> None:
    from mtlrec.model.layers import settle_numpy_blas

    with threadpool_limits(limits=1, user_api="blas"):
        cold = _rate(rows, inner, columns, repeat)
        settle_numpy_blas()
        settled = _rate(rows, inner, columns, repeat)
    print(json.dumps({"cold": cold, "settled": settled}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2048, help="rows a step (train.batch_size)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.rows, *args.child, args.repeat)
        return
    print("| bottom | product | GFLOP/s, first products | GFLOP/s, settled | ratio |")
    print("|---|---|---|---|---|")
    for name, inner, columns in SHAPES:
        command = [sys.executable, __file__, "--rows", str(args.rows), "--repeat",
                   str(args.repeat), "--child", str(inner), str(columns)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rates = json.loads(done.stdout.strip().splitlines()[-1])
        shape = f"({args.rows:,}, {inner}) x ({inner}, {columns})"
        print(f"| {name} | {shape} | {rates['cold']:.1f} | {rates['settled']:.1f} | "
              f"{rates['settled'] / rates['cold']:.2f} |")  # fmt: skip
    from mtlrec.host import numpy_blas_kernels, read_host

    print(f"numpy {np.__version__} ({numpy_blas_kernels()}); host: {read_host()}")


if __name__ == "__main__":
    main()
