"""The training loop: learning, determinism, resume after a crash, early stopping, outputs."""

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import roc_auc_score

from mtlrec.config import ModelConfig, TrainConfig
from mtlrec.host import numpy_blas_kernels, read_host
from mtlrec.model.predict import predict
from mtlrec.training import train as train_module
from mtlrec.training.data import load_training_data, read_split
from mtlrec.training.synthetic import write_synthetic_dataset
from mtlrec.training.train import clip_gradients, run, set_learning_rate
from tests.plain import plain_model, plain_text, plain_train


def tiny_model(**overrides: object) -> ModelConfig:
    base = dict(
        embedding_dim=8, hash_buckets=64, text_dim=4, bottom_dims=(16,), n_experts=2,
        n_shared_experts=1, expert_dims=(8,), tower_dims=(8,), dropout=0.1,
        text=plain_text(encoder="tiny", max_length=16),
    )  # fmt: skip
    return plain_model(**{**base, **overrides})


def tiny_train(**overrides: object) -> TrainConfig:
    return plain_train(**{"epochs": 3, "batch_size": 32, "lr": 0.01, **overrides})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("data"), 2000, 200, seed=0)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def weights(out_dir: Path) -> dict:
    return load_file(out_dir / "model.safetensors")


def assert_same_weights(left: Path, right: Path) -> None:
    a, b = weights(left), weights(right)
    assert a.keys() == b.keys()
    assert all(a[name].equal(b[name]) for name in a), "weights differ"


@pytest.mark.parametrize("bottom", ["shared_bottom", "mmoe", "ple"])
def test_training_learns_clicks(
    data_dir: Path, cache_dir: Path, tmp_path: Path, bottom: str
) -> None:
    # The tiny random text encoder cannot learn the synthetic relevance: its noisy valid loss
    # must not choose the epoch that the click AUC is measured on.
    weights = {"ctr": 1.0, "ctcvr": 1.0, "relevance": 0.1}
    result = run(
        tiny_model(bottom=bottom), tiny_train(loss_weights=weights), data_dir, tmp_path, cache_dir
    )
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 3 and losses[-1] < losses[0]
    valid = pd.read_parquet(data_dir / "valid.parquet")
    impressions = valid["source"] == "impression"
    scores = predict(tmp_path, valid[impressions], cache_dir)
    assert roc_auc_score(valid.loc[impressions, "click"], scores["p_ctr"]) > 0.6


def test_outputs_of_a_run(data_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    out, timings = tmp_path / "model", tmp_path / "timings" / "train.json"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier run")
    run(tiny_model(), tiny_train(epochs=2), data_dir, out, cache_dir, timings=timings)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "feature_spec.json", "model.safetensors", "schema.json",
        "train_summary.json", "training_curve.csv",
    ]  # fmt: skip
    curve = pd.read_csv(out / "training_curve.csv")
    assert list(curve["epoch"]) == [1, 2]
    assert not set(train_module.TIMING_COLUMNS) & set(curve.columns)  # timings: not an output
    for column in ("train_loss", "valid_loss", "valid_ctr", "valid_ctcvr", "train_relevance"):
        assert curve[column].notna().all()
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["epochs_run"] == 2 and summary["tasks"] == ["ctr", "cvr", "relevance"]
    config = json.loads((out / "config.json").read_text())
    assert config["text_encoder"].startswith("tiny-bert") and len(config["tasks"]) == 3
    # The wall-clock numbers, beside the outputs, name the machine they were measured on.
    recorded = json.loads(timings.read_text())
    assert [row["epoch"] for row in recorded["epochs"]] == [1, 2]
    cores = len(os.sched_getaffinity(0))
    assert recorded["host"] == str(read_host()) and f", {cores} core" in recorded["host"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_precision_trains_and_is_recorded(
    data_dir: Path, cache_dir: Path, tmp_path: Path, precision: str
) -> None:
    result = run(tiny_model(), tiny_train(epochs=2, precision=precision), data_dir, tmp_path,
                 cache_dir)  # fmt: skip
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["precision"] == precision


def test_a_run_can_be_given_a_thread_count_and_restores_the_callers(
    data_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    before = torch.get_num_threads()
    run(tiny_model(), tiny_train(epochs=1), data_dir, tmp_path, cache_dir, threads=2)
    assert json.loads((tmp_path / "train_summary.json").read_text())["threads"] == 2
    assert torch.get_num_threads() == before


def test_auto_precision_is_bf16_only_where_the_cpu_has_bf16_products(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert train_module.resolve_precision("fp32") == "fp32"
    assert train_module.resolve_precision("bf16") == "bf16"
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(train_module, "native_bf16", lambda native=native: native)
        assert train_module.resolve_precision("auto") == expected


def test_fp32_products_run_in_numpy_on_an_amd_cpu_on_one_thread(
    data_dir: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an AMD CPU the first layer's fp32 products run in numpy's BLAS, with one torch
    thread; it learns, and a rerun gives the same weights. bf16, two threads or another CPU
    keep torch's products; the summary says which ran."""

    losses: dict[str, list[float]] = {}

    def train(name: str, precision: str = "fp32", threads: int = 1) -> dict:
        result = run(tiny_model(), tiny_train(epochs=2, precision=precision), data_dir,
                     tmp_path / name, cache_dir, threads=threads)  # fmt: skip
        losses[name] = [row["train_loss"] for row in result.history]
        return json.loads((tmp_path / name / "train_summary.json").read_text())

    monkeypatch.setattr(train_module, "amd_cpu", lambda: True)
    first = train("a")
    assert first["numpy_blas"] is True and first["threads"] == 1
    assert first["numpy_blas_kernels"] == numpy_blas_kernels()  # which of its kernels ran
    assert losses["a"][-1] < losses["a"][0]
    assert train("b")["numpy_blas"] is True
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    assert train("two threads", threads=2)["numpy_blas"] is False
    bf16 = train("bf16", precision="bf16")
    assert bf16["numpy_blas"] is False and bf16["numpy_blas_kernels"] is None
    monkeypatch.setattr(train_module, "amd_cpu", lambda: False)
    assert train("intel")["numpy_blas"] is False


def test_same_seed_same_weights(data_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run(tiny_model(), tiny_train(epochs=2, seed=seed), data_dir, tmp_path / name, cache_dir)
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    with pytest.raises(AssertionError, match="weights differ"):
        assert_same_weights(tmp_path / "a", tmp_path / "c")


def test_resume_after_crash_matches_uninterrupted_run(
    data_dir: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every stateful piece at once: learned loss weights, the bias tower's own learning rate,
    # the cosine schedule (a function of the step, not scheduler state).
    cfg = tiny_model(bottom="mmoe", bias_features=("position",), field_interactions=True)
    train_cfg = tiny_train(loss_weighting="uncertainty", lr_schedule="cosine")
    straight = run(cfg, train_cfg, data_dir, tmp_path / "straight", cache_dir)
    real_epoch = train_module._train_epoch

    def crash_in_epoch_3(session: train_module.Session, epoch: int) -> dict:
        if epoch == 3:
            raise KeyboardInterrupt("simulated crash")
        return real_epoch(session, epoch)

    monkeypatch.setattr(train_module, "_train_epoch", crash_in_epoch_3)
    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(KeyboardInterrupt):
        run(cfg, train_cfg, data_dir, tmp_path / "resumed", cache_dir, checkpoints=checkpoints)
    (run_dir,) = checkpoints.iterdir()  # one folder, named by the run's fingerprint
    assert [p.name for p in run_dir.iterdir()] == ["epoch_002"]
    shutil.rmtree(tmp_path / "resumed")  # as DVC does to a stage's outputs before a rerun
    monkeypatch.setattr(train_module, "_train_epoch", real_epoch)
    resumed = run(
        cfg, train_cfg, data_dir, tmp_path / "resumed", cache_dir, checkpoints=checkpoints
    )
    assert resumed.resumed_from_epoch == 2 and straight.resumed_from_epoch is None
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")
    drop = list(train_module.TIMING_COLUMNS)
    pd.testing.assert_frame_equal(
        pd.DataFrame(straight.history).drop(columns=drop),
        pd.DataFrame(resumed.history).drop(columns=drop),
    )
    assert not checkpoints.exists()
    for name in ("model.safetensors", "training_curve.csv", "train_summary.json", "config.json"):
        same = (tmp_path / "straight" / name).read_bytes() == (
            tmp_path / "resumed" / name
        ).read_bytes()
        assert same, f"{name} differs: an identical training must write identical outputs"


def test_checkpoints_of_another_config_are_not_resumed(
    data_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    checkpoints = tmp_path / "checkpoints"
    model = tmp_path / "model"
    cfg, other = tiny_train(epochs=1), tiny_train(epochs=1, lr=0.02)
    run(
        tiny_model(),
        cfg,
        data_dir,
        model,
        cache_dir,
        checkpoints=checkpoints,
        keep_checkpoints=True,
    )
    assert [p.name for p in next(checkpoints.iterdir()).iterdir()] == ["epoch_001"]
    result = run(tiny_model(), other, data_dir, model, cache_dir, checkpoints=checkpoints)
    assert result.resumed_from_epoch is None
    assert not checkpoints.exists()  # the stale run's checkpoints went too


def test_checkpoints_are_resumed_by_the_precision_that_ran_not_by_auto(
    data_dir: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "auto" is bf16 on a CPU with bf16 products and fp32 elsewhere: a checkpoint says which."""
    checkpoints = tmp_path / "checkpoints"

    def train(precision: str) -> train_module.TrainResult:
        return run(tiny_model(), tiny_train(epochs=1, precision=precision), data_dir,
                   tmp_path / "model", cache_dir, checkpoints=checkpoints,
                   keep_checkpoints=True)  # fmt: skip

    monkeypatch.setattr(train_module, "native_bf16", lambda: True)
    assert train("auto").resumed_from_epoch is None
    assert train("bf16").resumed_from_epoch == 1  # the same training: its checkpoint is done
    monkeypatch.setattr(train_module, "native_bf16", lambda: False)
    assert train("auto").resumed_from_epoch is None  # fp32 here: not the bf16 run's checkpoint


def scripted_valid_losses(values: list[float]) -> Iterator[dict[str, float]]:
    for value in values:
        yield {"ctr": value, "ctcvr": 0.0, "relevance": 0.0}


def test_early_stopping_keeps_the_best_epoch(
    data_dir: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = scripted_valid_losses([1.0, 0.5, 0.9, 0.8, 0.1])
    monkeypatch.setattr(train_module, "evaluate_losses", lambda model, split: next(script))
    result = run(
        tiny_model(), tiny_train(epochs=5, patience=2), data_dir, tmp_path / "a", cache_dir
    )
    assert (result.epochs_run, result.best_epoch, result.stopped_early) == (4, 2, True)
    script = scripted_valid_losses([1.0, 0.5])
    run(tiny_model(), tiny_train(epochs=2, patience=2), data_dir, tmp_path / "b", cache_dir)
    assert_same_weights(tmp_path / "a", tmp_path / "b")  # the output is epoch 2's model


@pytest.mark.parametrize(
    ("tasks", "columns"),
    [
        (("ctr",), ["p_ctr"]),
        (("relevance",), ["relevance"]),
        (("ctr", "cvr"), ["p_ctr", "p_cvr", "p_ctcvr"]),
        (("cvr",), ["p_cvr"]),
    ],
)
def test_single_task_baselines(
    data_dir: Path, cache_dir: Path, tmp_path: Path, tasks: tuple, columns: list[str]
) -> None:
    result = run(tiny_model(tasks=tasks), tiny_train(epochs=1), data_dir, tmp_path, cache_dir)
    assert all(row["train_loss"] > 0 for row in result.history)
    test = pd.read_parquet(data_dir / "test.parquet")
    assert list(predict(tmp_path, test, cache_dir).columns) == columns


def test_finetuning_the_tiny_encoder(data_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    text = plain_text(encoder="tiny", max_length=16, finetune_layers=1)
    run(tiny_model(text=text), tiny_train(epochs=1), data_dir, tmp_path, cache_dir)
    assert any(name.startswith("text_encoder.") for name in weights(tmp_path))
    test = pd.read_parquet(data_dir / "test.parquet").head(50)
    scores = predict(tmp_path, test, cache_dir)
    assert scores.notna().all().all() and len(scores) == 50


def test_refuses_to_clear_a_project_directory(
    data_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    with pytest.raises(ValueError, match="refusing to clear"):
        run(tiny_model(), tiny_train(epochs=1), data_dir, tmp_path, cache_dir)
    assert (tmp_path / "dvc.yaml").exists()


def test_single_task_cvr_trains_on_clicked_rows_only(data_dir: Path) -> None:
    train = read_split(data_dir, "train", tiny_model(tasks=("cvr",)))
    everything = pd.read_parquet(data_dir / "train.parquet")
    assert (train["click"] == 1).all() and len(train) == (everything["click"] == 1).sum()


def test_result_prints_one_short_line(data_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    result = run(tiny_model(), tiny_train(epochs=2), data_dir, tmp_path, cache_dir)
    text = str(result)
    assert "\n" not in text and "history" not in text and len(text) < 200
    assert (
        "trained 2 epochs" in text
        and "samples/s" in text
        and f"best epoch {result.best_epoch}" in text
    )


def test_cosine_schedule_decays_to_zero() -> None:
    optimizer = torch.optim.AdamW(
        [{"params": [torch.zeros(1)]}, {"params": [torch.zeros(1)], "lr_scale": 10.0}]
    )
    cfg = tiny_train(lr=0.1, lr_schedule="cosine")
    rates = []
    for progress in (0.0, 0.5, 1.0):
        set_learning_rate(optimizer, cfg, progress)
        rates += [group["lr"] for group in optimizer.param_groups]
    assert rates == pytest.approx([0.1, 1.0, 0.05, 0.5, 0.0, 0.0])
    set_learning_rate(optimizer, tiny_train(lr=0.1), 0.7)
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_normalized_selection_weighs_each_task_by_its_constant_loss(
    data_dir: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Epoch 2: ctr log loss +0.10, relevance MSE -0.15. Raw, epoch 2 is better; relative to the
    # constant predictors of this data (log loss 0.59, MSE 1.04), ctr's loss weighs more: epoch 1.
    scripted = [
        {"ctr": 0.50, "ctcvr": 0.2, "relevance": 1.00},
        {"ctr": 0.60, "ctcvr": 0.2, "relevance": 0.85},
    ]
    for selection, best in (("loss", 2), ("normalized", 1)):
        values = iter(scripted)
        monkeypatch.setattr(
            train_module, "evaluate_losses", lambda model, split, values=values: next(values)
        )
        cfg = tiny_train(epochs=2, selection=selection, patience=2)
        result = run(tiny_model(), cfg, data_dir, tmp_path / selection, cache_dir)
        assert result.best_epoch == best
        curve = pd.read_csv(tmp_path / selection / "training_curve.csv")
        assert curve["valid_score"].notna().all()


def test_without_id_embeddings_the_model_reads_no_raw_id(
    data_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    with_ids = load_training_data(tiny_model(), data_dir, cache_dir, None).spec
    spec = load_training_data(tiny_model(id_embeddings=False), data_dir, cache_dir, None).spec
    assert with_ids.ids and spec.ids == () and spec.categoricals == with_ids.categoricals
    run(tiny_model(id_embeddings=False), tiny_train(epochs=1), data_dir, tmp_path, cache_dir)
    saved = json.loads((tmp_path / "feature_spec.json").read_text())
    assert saved["ids"] == []  # serving encodes the same fields as training did


@pytest.mark.parametrize("scale", [0.01, 100.0])  # under the limit: untouched; over: clipped
def test_clip_gradients_is_clip_grad_norm_bit_for_bit(scale: float) -> None:
    torch.manual_seed(0)
    grads = [torch.randn(7, 3) * scale, torch.randn(5) * scale]
    ours = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, q, g in zip(ours, theirs, grads, strict=True):
        p.grad, q.grad = g.clone(), g.clone()
    unused = torch.nn.Parameter(torch.zeros(2))  # no gradient: skipped by both
    clip_gradients([*ours, unused], 5.0)
    torch.nn.utils.clip_grad_norm_([*theirs, unused], 5.0)
    for p, q, g in zip(ours, theirs, grads, strict=True):
        assert torch.equal(p.grad, q.grad)
        assert torch.equal(p.grad, g) == (scale < 1)  # only the large ones were scaled
    assert unused.grad is None
