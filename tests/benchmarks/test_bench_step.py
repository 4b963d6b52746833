"""benchmarks/bench_step.py end to end on a tiny synthetic table, so the script cannot rot."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mtlrec.training.synthetic import write_synthetic_dataset
from tests.benchmarks.test_bench_peer import TINY_MODEL, table_rows
from tests.conftest import REPO, tiny_raw_params


@pytest.mark.slow  # about 10 s: a child process that imports torch and trains a few steps
def test_bench_step_prints_the_phases_and_the_kernels_op_by_op(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "data", 300, 60, seed=0)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_raw_params(model={**TINY_MODEL, "bottom": "ple"})))
    command = [sys.executable, str(REPO / "benchmarks" / "bench_step.py"), "--params", str(params)]
    command += ["--data", str(data), "--cache", str(tmp_path / "cache"), "--batch-size", "32"]
    command += ["--warmup", "2", "--steps", "3", "--op-steps", "2", "--ops", "1000"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    tables = done.stdout.split("\n\n")
    phases = table_rows(tables[0])
    assert [row["phase"] for row in phases] == [
        "batch", "forward", "backward", "clip", "optimizer", "step"
    ]  # fmt: skip
    assert all(float(row["ms"].split()[0]) > 0 for row in phases)
    ops = table_rows(tables[1])  # every op the step calls: --ops is more than there are
    times = [float(row["ms a step"]) for row in ops]
    assert times == sorted(times, reverse=True) and times[0] > 0
    assert {"addmm", "mm", "bmm", "_fused_adamw_"} <= {row["op"] for row in ops}
    kernels = float(tables[1].split(": ")[1].split(" ms")[0])  # the sum the header gives
    assert sum(times) == pytest.approx(kernels, abs=0.001 * len(times) + 0.01)
    assert "ple, 32 rows a step" in tables[0]


@pytest.mark.slow  # about 10 s, as above
def test_bench_step_without_op_steps_prints_the_phases_only(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "data", 300, 60, seed=0)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_raw_params(model=TINY_MODEL)))
    command = [sys.executable, str(REPO / "benchmarks" / "bench_step.py"), "--params", str(params)]
    command += ["--data", str(data), "--cache", str(tmp_path / "cache"), "--batch-size", "32"]
    command += ["--warmup", "1", "--steps", "2", "--op-steps", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]  # it divided by the 0 steps
    assert "| step |" in done.stdout and "kernels op by op" not in done.stdout
