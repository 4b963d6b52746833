"""benchmarks/bench_peer.py end to end on a tiny synthetic table, so the script cannot rot."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mtlrec.host import read_host
from mtlrec.training.synthetic import write_synthetic_dataset
from tests.conftest import REPO, tiny_raw_params

TINY_MODEL = {
    "embedding_dim": 8, "hash_buckets": 64, "text_dim": 4, "n_experts": 2,
    "n_shared_experts": 1, "expert_dims": [8], "tower_dims": [8],
    "text": {"encoder": "tiny", "max_length": 16},
}  # fmt: skip


def table_rows(stdout: str) -> list[dict[str, str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    head = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [
        dict(zip(head, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        for line in lines[1:]
    ]


@pytest.mark.slow  # about 20 s: ten trainings in a child process that imports torch
def test_bench_peer_prints_a_row_per_model(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "data", 600, 120, seed=0)
    params = tmp_path / "params.yaml"
    raw = tiny_raw_params(model=TINY_MODEL, train={"batch_size": 64})
    params.write_text(yaml.safe_dump(raw))
    command = [sys.executable, str(REPO / "benchmarks" / "bench_peer.py"), "--params", str(params)]
    command += ["--data", str(data), "--cache", str(tmp_path / "cache"), "--rows", "400"]
    command += ["--threads", "2", "--repeat", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = table_rows(done.stdout)
    models = [
        ("ours", "shared_bottom"), ("ours", "mmoe"), ("ours", "ple"),
        ("torch-rechub", "mmoe"), ("torch-rechub", "ple"),
    ]  # fmt: skip
    assert [(r["run"], r["model"], r["bottom"]) for r in rows] == [
        (run, *model) for run in ("1", "2") for model in models
    ]
    ours, rechub = rows[0], rows[3]
    assert ours["tasks"] == "ctr, cvr, relevance" and rechub["tasks"] == "ctr, ctcvr"
    assert rows[3]["ratio to torch-rechub mmoe"] == rows[8]["ratio to torch-rechub mmoe"] == "1.00"
    # A line per other model: its ratio in each run and their median.
    summary = [line for line in done.stdout.splitlines() if "(median " in line]
    assert [line.split(":")[0] for line in summary] == [
        "ours shared_bottom", "ours mmoe", "ours ple", "torch-rechub ple"
    ]  # fmt: skip
    # Ours trains on impression and judgement rows of the 400 sampled, torch-rechub on the
    # impressions alone.
    assert int(ours["train rows"]) == 400 > int(rechub["train rows"]) > 0
    assert {row["threads"] for row in rows} == {"2"}  # the same thread count for all
    assert rechub["precision"] == "fp32" and ours["precision"] in {"fp32", "bf16"}
    assert f"\nhost: {read_host()}\n" in done.stdout  # which machine the numbers are from
    for row in rows:
        assert 0.0 <= float(row["test AUC ctr"]) <= 1.0
        assert 0.0 <= float(row["test AUC ctcvr"]) <= 1.0


def test_a_thread_count_below_one_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    command = [sys.executable, str(REPO / "benchmarks" / "bench_peer.py"), "--threads", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert "--threads: expected a whole number >= 1, got '0'" in done.stderr
    assert "Traceback" not in done.stderr


def load_bench_peer(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - the script's module
    spec = importlib.util.spec_from_file_location(
        "bench_peer", REPO / "benchmarks" / "bench_peer.py"
    )
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up while it loads; gone again after the test.
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_each_run_s_ratio_is_to_that_run_s_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    peer = load_bench_peer(monkeypatch)

    def result(model: str, bottom: str, seconds: float, run: int):  # noqa: ANN202
        return peer.Result(model, bottom, "t", 1, "fp32", 1000, 1, seconds, None, None, run)

    results = [
        result("ours", "ple", 1.0, 1), result("torch-rechub", "mmoe", 2.0, 1),
        result("ours", "ple", 2.0, 2), result("torch-rechub", "mmoe", 3.0, 2),
        result("ours", "ple", 1.0, 3), result("torch-rechub", "mmoe", 4.0, 3),
    ]  # fmt: skip
    # Run 2's machine was slower for both: its ratio is 1.5, not 1000/2 over run 1's 500.
    assert peer.ratios(results) == {0: 2.0, 1: 1.0, 2: 1.5, 3: 1.0, 4: 4.0, 5: 1.0}
    assert peer.ratio_summary(results) == [
        "ours ple: ratio to torch-rechub mmoe 2.00, 1.50, 4.00 (median 2.00)"
    ]
    table = peer.markdown_table(results).splitlines()
    assert table[4].startswith("| 2 | ours | ple |") and "| 1.50 |" in table[4]
