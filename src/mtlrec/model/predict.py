"""Saved model directories and batch prediction.

A model directory holds `model.safetensors` (weights), `config.json` (model config, tasks, text
encoder id) and `feature_spec.json`: loading never unpickles anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from mtlrec.config import ModelConfig
from mtlrec.model.inputs import TensorFrame, tensor_frame
from mtlrec.model.multitask import MultiTaskModel, TaskOutputs
from mtlrec.model.spec import FeatureSpec
from mtlrec.model.text_cache import encoder_id

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
SPEC_FILE = "feature_spec.json"
FORMAT_VERSION = 3  # 2: the bottoms' experts are one ExpertBank each; 3: MLP layers a ModuleList
PREDICT_BATCH = 8192


@dataclass
class LoadedModel:
    model: MultiTaskModel  # in eval mode
    spec: FeatureSpec
    cfg: ModelConfig

    @property
    def outputs(self) -> list[str]:
        return [column for task in self.model.tasks for column in task.outputs]


def save_model(out_dir: Path, model: MultiTaskModel, spec: FeatureSpec) -> None:
    """Write the three files of a model directory."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(weights, out_dir / WEIGHTS_FILE, metadata={"format_version": str(FORMAT_VERSION)})
    config = {
        "format_version": FORMAT_VERSION,
        "model": model.cfg.model_dump(mode="json"),
        "tasks": [asdict(task) for task in model.tasks],
        "text_encoder": encoder_id(model.cfg.text),
        "input_dim": model.in_dim,
    }
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    spec.save(out_dir / SPEC_FILE)


def load(model_dir: Path | str) -> LoadedModel:
    """Rebuild a saved model from safetensors + JSON; fail if its text encoder changed."""
    model_dir = Path(model_dir)
    config = json.loads((model_dir / CONFIG_FILE).read_text())
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{model_dir}: format {config.get('format_version')} != {FORMAT_VERSION}")
    cfg = ModelConfig.model_validate(config["model"])
    if encoder_id(cfg.text) != config["text_encoder"]:
        # Other embeddings than the model was trained on would degrade it silently.
        raise ValueError(
            f"{model_dir}: trained with {config['text_encoder']!r}, "
            f"installed encoder is {encoder_id(cfg.text)!r}"
        )
    spec = FeatureSpec.load(model_dir / SPEC_FILE)
    model = MultiTaskModel(cfg, spec)
    model.load_state_dict(load_file(model_dir / WEIGHTS_FILE), strict=True)
    model.eval()
    return LoadedModel(model, spec, cfg)


def _output_columns(outputs: TaskOutputs) -> dict[str, torch.Tensor]:
    columns = {
        "p_ctr": outputs.p_ctr,
        "p_cvr": outputs.p_cvr,
        "p_ctcvr": outputs.p_ctcvr,
        "relevance": outputs.relevance,
    }
    return {name: value for name, value in columns.items() if value is not None}


@torch.no_grad()
def predict_frame(model: MultiTaskModel, frame: TensorFrame) -> dict[str, torch.Tensor]:
    """Every output column of `model` over an encoded frame, in eval mode, batch by batch."""
    if model.training:  # eval() walks every submodule: a serving request pays for it otherwise
        model.eval()
    chunks: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(frame), PREDICT_BATCH):
        rows = torch.arange(start, min(start + PREDICT_BATCH, len(frame)))
        for name, value in _output_columns(model(frame.inputs(rows))).items():
            chunks.setdefault(name, []).append(value)
    return {name: torch.cat(values) for name, values in chunks.items()}


def predict(model: LoadedModel | Path | str, df: pd.DataFrame, cache_dir: Path) -> pd.DataFrame:
    """`p_ctr`, `p_cvr`, `p_ctcvr`, `relevance` (those the model has), aligned to `df.index`."""
    loaded = model if isinstance(model, LoadedModel) else load(model)
    frame = tensor_frame(loaded.spec, loaded.cfg, df, cache_dir, loaded.model.text_encoder)
    columns = predict_frame(loaded.model, frame)
    if not len(df):
        return pd.DataFrame(
            {name: pd.Series(dtype="float64") for name in loaded.outputs}, index=df.index
        )
    return pd.DataFrame({n: v.double().numpy() for n, v in columns.items()}, index=df.index)
