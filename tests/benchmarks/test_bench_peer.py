"""benchmarks/bench_peer.py end to end on a tiny synthetic table, so the script cannot rot."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


@pytest.mark.slow  # about 10 s: five trainings in a child process that imports torch
def test_bench_peer_prints_a_row_per_model(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "data", 600, 120, seed=0)
    params = tmp_path / "params.yaml"
    raw = tiny_raw_params(model=TINY_MODEL, train={"batch_size": 64})
    params.write_text(yaml.safe_dump(raw))
    command = [sys.executable, str(REPO / "benchmarks" / "bench_peer.py"), "--params", str(params)]
    command += ["--data", str(data), "--cache", str(tmp_path / "cache"), "--rows", "400"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = table_rows(done.stdout)
    assert [(r["model"], r["bottom"]) for r in rows] == [
        ("ours", "shared_bottom"), ("ours", "mmoe"), ("ours", "ple"),
        ("torch-rechub", "mmoe"), ("torch-rechub", "ple"),
    ]  # fmt: skip
    ours, rechub = rows[0], rows[3]
    assert ours["tasks"] == "ctr, cvr, relevance" and rechub["tasks"] == "ctr, ctcvr"
    assert rechub["ratio to torch-rechub mmoe"] == "1.00"
    # Ours trains on impression and judgement rows of the 400 sampled, torch-rechub on the
    # impressions alone.
    assert int(ours["train rows"]) == 400 > int(rechub["train rows"]) > 0
    assert len({row["threads"] for row in rows}) == 1  # the same thread count for all
    assert rechub["precision"] == "fp32" and ours["precision"] in {"fp32", "bf16"}
    for row in rows:
        assert 0.0 <= float(row["test AUC ctr"]) <= 1.0
        assert 0.0 <= float(row["test AUC ctcvr"]) <= 1.0
