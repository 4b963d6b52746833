"""Data-parallel training: sharding of the global batch, and a real 2-process torchrun run."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score

from mtlrec.config import parse_params
from mtlrec.model.predict import predict
from mtlrec.training import distributed
from mtlrec.training.distributed import World
from mtlrec.training.synthetic import write_synthetic_dataset
from mtlrec.training.train import run
from tests.conftest import tiny_raw_params, tool_env


def test_ranks_split_each_global_batch_without_overlap() -> None:
    rows = torch.arange(10)
    shards = [World(rank, 2).shard(rows) for rank in (0, 1)]
    assert shards[0].tolist() == [0, 2, 4, 6, 8] and shards[1].tolist() == [1, 3, 5, 7, 9]
    single = World()
    assert torch.equal(single.shard(rows), rows) and not single.distributed and single.is_main
    assert single.sum([1.0, 2.0]) == [1.0, 2.0]
    module = torch.nn.Linear(2, 1)
    assert single.wrap(module) is module


def click_auc(model_dir: Path, data_dir: Path, cache_dir: Path) -> float:
    test = pd.read_parquet(data_dir / "test.parquet")
    shown = test[test["source"] == "impression"]
    return roc_auc_score(shown["click"], predict(model_dir, shown, cache_dir)["p_ctr"])


@pytest.mark.slow
def test_torchrun_two_processes_reach_the_quality_of_one(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "data", 4000, 300, seed=3)
    model = {
        "embedding_dim": 8, "hash_buckets": 64, "text_dim": 4, "bottom_dims": [16],
        "tower_dims": [8], "bias_features": ["position"], "field_interactions": True,
        "text": {"encoder": "tiny", "max_length": 16, "word_match": True},
    }  # fmt: skip
    train = {"epochs": 3, "batch_size": 64, "lr": 0.005, "lr_schedule": "cosine"}
    raw = tiny_raw_params(model=model, train=train)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    params, cache = parse_params(raw), tmp_path / "cache"
    run(params.model, params.train, data, tmp_path / "one", cache)
    command = [sys.executable, "-m", "mtlrec.cli", "--params", str(tmp_path / "params.yaml")]
    command += ["train", "--data", str(data), "--out", str(tmp_path / "two")]
    command += ["--cache", str(cache), "--nproc", "2"]
    done = subprocess.run(command, env=tool_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 3 epochs") == 1  # rank 0 alone reports
    summary = json.loads((tmp_path / "two" / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["n_train_rows"] > 0
    one, two = click_auc(tmp_path / "one", data, cache), click_auc(tmp_path / "two", data, cache)
    assert one > 0.6 and abs(one - two) < 0.03, (one, two)


def test_a_big_training_split_trains_on_a_process_per_core_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_file = tmp_path / "train.parquet"
    pd.DataFrame({"click": range(1_000)}).to_parquet(train_file)
    assert distributed.auto_processes(train_file) == 1  # small: one process
    assert distributed.auto_processes(tmp_path / "missing.parquet") == 1
    monkeypatch.setattr(distributed, "AUTO_MIN_ROWS", 500)
    for cores, expected in ((1, 1), (2, 2), (8, 2), (64, 8)):
        monkeypatch.setattr(distributed.os, "sched_getaffinity", lambda _, n=cores: set(range(n)))
        threads = distributed.threads_per_process()
        assert (distributed.auto_processes(train_file), threads) == (
            expected,
            max(1, min(4, cores // 2)),
        )
