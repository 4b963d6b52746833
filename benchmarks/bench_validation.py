"""The validation gate: wall and CPU time to validate the default shop and one with 10x the rows.

For each size: simulate the shop into a temporary folder, copy the repo's `gx/` suites beside
it (no earlier results), and time one `gate.run` over every landing batch, Data Docs included.
`x10` multiplies the fact tables (impressions per day, judgements per query) and the users by
ten; the item catalogue stays at the default 1,200 (the simulator's query-item relevance matrix
grows with the square of the items, and a catalogue does not grow with traffic). A size runs
in a child process, so one size's imports and caches do not flatter the next.

    .venv/bin/python benchmarks/bench_validation.py [--sizes default x10]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCALED = ("n_users", "impressions_per_day", "judgments_per_query")


def shop_params(size: str) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    default = raw["simulate"]["presets"]["default"]
    if size == "x10":
        raw["simulate"]["presets"]["x10"] = {
            key: value * 10 if key in SCALED else value for key, value in default.items()
        }
    raw["simulate"]["preset"] = size
    return raw


def measure(size: str) -> dict:
    """Simulate `size`, validate it once; the numbers of the validation alone."""
    import pandas as pd

    from mtlrec.config import parse_params
    from mtlrec.data import simulate
    from mtlrec.validation import gate

    params = parse_params(shop_params(size))
    with tempfile.TemporaryDirectory(prefix=f"bench-validation-{size}-") as folder:
        root = Path(folder)
        simulate.run(params.simulate, root / "landing", root / "truth")
        shutil.copytree(REPO / "gx", root / "gx", ignore=shutil.ignore_patterns("uncommitted"))
        files = sorted((root / "landing").glob("*/*.parquet"))
        rows = sum(len(pd.read_parquet(file)) for file in files)
        wall, cpu = time.perf_counter(), time.process_time()
        report = gate.run(
            params.validate_, root / "landing", root / "validated", root / "quarantine", root
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert not report.failed
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size": size, "batches": len(files), "rows": rows, "wall_s": wall, "cpu_s": cpu,
            "peak_mib": peak_mib}  # fmt: skip


def table(results: list[dict]) -> str:
    header = f"{'size':<8} {'batches':>7} {'rows':>10} {'wall s':>8} {'cpu s':>8} "
    header += f"{'rows/s':>9} {'s/batch':>8} {'peak MiB':>9}"
    lines = [header]
    for r in results:
        lines.append(
            f"{r['size']:<8} {r['batches']:>7} {r['rows']:>10,} {r['wall_s']:>8.1f} "
            f"{r['cpu_s']:>8.1f} {r['rows'] / r['wall_s']:>9,.0f} "
            f"{r['wall_s'] / r['batches']:>8.2f} {r['peak_mib']:>9,.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["default", "x10"])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process: measure one size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    results = []
    for size in args.sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--one", size], capture_output=True, text=True, check=True
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(table(results))


if __name__ == "__main__":
    main()
