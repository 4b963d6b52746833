"""benchmarks/bench_ab.py end to end on a tiny synthetic table, so the script cannot rot."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mtlrec.training.synthetic import write_synthetic_dataset
from tests.benchmarks.test_bench_peer import TINY_MODEL, table_rows
from tests.conftest import REPO, tiny_raw_params


def _command(tmp_path: Path, against: str) -> list[str]:
    data = write_synthetic_dataset(tmp_path / "data", 300, 60, seed=0)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_raw_params(model=TINY_MODEL)))
    command = [sys.executable, str(REPO / "benchmarks" / "bench_ab.py"), "--against", against]
    command += ["--params", str(params), "--data", str(data), "--cache", str(tmp_path / "cache")]
    return command + ["--batch-size", "32", "--warmup", "1", "--rounds", "3", "--steps", "2"]


@pytest.mark.slow  # about 15 s: two child processes that import torch and train a few steps
def test_bench_ab_times_the_working_tree_against_a_revision_in_turns(tmp_path: Path) -> None:
    done = subprocess.run(_command(tmp_path, "HEAD"), capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "32 rows a step; 3 rounds of 2 steps a side" in done.stdout
    rows = table_rows(done.stdout)
    assert [row["code"] for row in rows] == ["working tree", "HEAD"]
    assert all(int(row["steps"]) == 6 and float(row["median ms a step"]) > 0 for row in rows)
    assert "working tree - HEAD: " in done.stdout and "median step ratio" in done.stdout


def test_bench_ab_names_a_revision_git_does_not_know(tmp_path: Path) -> None:
    done = subprocess.run(_command(tmp_path, "no-such-revision"), capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("git archive no-such-revision: ")
    assert "Traceback" not in done.stderr
