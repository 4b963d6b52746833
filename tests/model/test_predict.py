"""Saved model directories: safetensors + JSON only, and predictions that survive the trip."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from mtlrec.model.inputs import TensorFrame
from mtlrec.model.multitask import MultiTaskModel
from mtlrec.model.predict import LoadedModel, load, predict, predict_frame, save_model
from mtlrec.model.spec import FeatureSpec, SchemaFeature
from mtlrec.model.text import build_text_table
from mtlrec.training.synthetic import SCHEMA, synthetic_frame
from tests.plain import plain_model, plain_text

CFG = plain_model(
    bottom="ple", embedding_dim=4, hash_buckets=32, text_dim=4, n_experts=2, n_shared_experts=1,
    expert_dims=(8,), tower_dims=(4,), text=plain_text(encoder="tiny", max_length=16),
)  # fmt: skip


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    shuffled = synthetic_frame(60, 20, seed=2).sample(frac=1.0, random_state=0)
    return shuffled.set_index(pd.Index([f"k{i}" for i in range(len(shuffled))]))


@pytest.fixture(scope="module")
def saved(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A model saved to disk and its in-memory predictions on `frame`."""
    schema = [SchemaFeature(f["name"], f["kind"]) for f in SCHEMA]
    spec = FeatureSpec.fit(schema, frame, CFG.hash_buckets)
    torch.manual_seed(0)
    model = MultiTaskModel(CFG, spec)
    out_dir, cache = tmp_path_factory.mktemp("model"), tmp_path_factory.mktemp("cache")
    save_model(out_dir, model, spec)
    encoded = spec.encode(frame)
    table = build_text_table(encoded.strings, CFG.text, cache)
    return out_dir, predict_frame(model, TensorFrame.build(encoded, table))


def test_model_directory_holds_no_pickle(saved: tuple[Path, dict]) -> None:
    out_dir, _ = saved
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "config.json", "feature_spec.json", "model.safetensors",
    ]  # fmt: skip


def test_predictions_round_trip(
    saved: tuple[Path, dict], frame: pd.DataFrame, tmp_path: Path
) -> None:
    out_dir, expected = saved
    loaded = load(out_dir)
    assert isinstance(loaded, LoadedModel) and loaded.cfg == CFG
    scores = predict(loaded, frame, tmp_path)
    assert list(scores.columns) == ["p_ctr", "p_cvr", "p_ctcvr", "relevance"]
    assert scores.index.equals(frame.index)
    for column, values in expected.items():
        torch.testing.assert_close(torch.from_numpy(scores[column].to_numpy()).float(), values)
    pd.testing.assert_frame_equal(predict(out_dir, frame, tmp_path), scores)
    assert predict(loaded, frame.head(0), tmp_path).empty


def test_load_refuses_another_text_encoder(saved: tuple[Path, dict], tmp_path: Path) -> None:
    out_dir, _ = saved
    for name in ("model.safetensors", "feature_spec.json"):
        (tmp_path / name).write_bytes((out_dir / name).read_bytes())
    config = json.loads((out_dir / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "text_encoder": "other"}))
    with pytest.raises(ValueError, match="trained with 'other'"):
        load(tmp_path)
