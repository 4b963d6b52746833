"""The whole pipeline from nothing, stage by stage: seconds per stage and in all.

Copies the project (code, dvc.yaml, params.yaml, feature repo, expectations) into a temporary
folder with a fresh git repository and no DVC cache, so nothing is restored from an earlier
run, then runs each stage of dvc.yaml in DVC's order with `dvc repro --single-item` and times
it (the stage's process, its imports and DVC's own hashing included: what `make run` pays).
`--scale 2` multiplies the shop's daily impressions (the linearity check: each stage at twice
the impressions should take at most 2.1 times as long).

    .venv/bin/python benchmarks/bench_pipeline.py [--preset default] [--scale 1 2] [--keep]

The install (`make setup`) is not timed: run it first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from mtlrec.host import read_host

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", "feature_repo", "gx", "src", "sources")


def copy_project(target: Path, preset: str, scale: float) -> Path:
    for name in PROJECT_FILES:
        source = REPO / name
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "uncommitted")
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, target / name)
    shutil.copytree(REPO / ".dvc", target / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    params = yaml.safe_load((target / "params.yaml").read_text())
    params["simulate"]["preset"] = preset
    size = params["simulate"]["presets"][preset]
    size["impressions_per_day"] = int(size["impressions_per_day"] * scale)
    (target / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    return target


def tool_env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "FEAST_USAGE": "False",
        "DVC_NO_ANALYTICS": "1",
        "MTLREC_FEAST_PROFILE": "local",
    }


def run_stages(root: Path) -> dict[str, float]:
    stages = list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    seconds = {}
    for stage in stages:
        started = time.perf_counter()
        done = subprocess.run(
            ["dvc", "repro", "--single-item", stage],
            cwd=root,
            env=tool_env(),
            capture_output=True,
            text=True,
        )
        seconds[stage] = time.perf_counter() - started
        print(f"  {stage:<14} {seconds[stage]:7.1f} s", flush=True)
        if done.returncode != 0:
            raise SystemExit(f"{stage} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--scale", type=float, nargs="+", default=[1.0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    args = parser.parse_args()
    runs: dict[float, dict[str, float]] = {}
    for scale in args.scale:
        folder = Path(tempfile.mkdtemp(prefix=f"bench_pipeline_{scale:g}x_"))
        print(f"{args.preset} x{scale:g} impressions in {folder}", flush=True)
        try:
            runs[scale] = run_stages(copy_project(folder, args.preset, scale))
        finally:
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    stages = list(next(iter(runs.values())))
    header = f"{'stage':<14}" + "".join(f"{f'x{s:g} (s)':>11}" for s in runs)
    base = min(runs)
    ratios = [s for s in runs if s != base]
    header += "".join(f"{f'x{s:g}/x{base:g}':>11}" for s in ratios)
    print(header)
    print("-" * len(header))
    for stage in [*stages, "total"]:
        values = {s: sum(r.values()) if stage == "total" else r[stage] for s, r in runs.items()}
        line = f"{stage:<14}" + "".join(f"{values[s]:>11.1f}" for s in runs)
        line += "".join(f"{values[s] / max(values[base], 1e-9):>11.2f}" for s in ratios)
        print(line)
    print(f"host: {read_host()}")


if __name__ == "__main__":
    main()
