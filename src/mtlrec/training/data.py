"""Training data: the split parquet files as encoded tensors plus labels, and shuffled batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from mtlrec.config import ModelConfig
from mtlrec.model.inputs import ModelInputs, TensorFrame, tensor_frame
from mtlrec.model.losses import Targets
from mtlrec.model.spec import FeatureSpec, read_schema
from mtlrec.model.tasks import task_specs
from mtlrec.model.text import TextEncoder

SCHEMA_FILE = "schema.json"


@dataclass
class Split:
    """One split, ready to batch: encoded inputs and the labels of each row."""

    frame: TensorFrame
    targets: Targets

    def __len__(self) -> int:
        return len(self.frame)

    def batch(self, rows: torch.Tensor) -> tuple[ModelInputs, Targets]:
        return self.frame.inputs(rows), self.targets.take(rows)


@dataclass
class TrainingData:
    spec: FeatureSpec
    train: Split
    valid: Split


def read_split(data_dir: Path, name: str, cfg: ModelConfig) -> pd.DataFrame:
    """A split's rows that carry a label of some configured task (a ctr-only model skips the
    judgement rows instead of spending compute on rows that have no loss; the single-task CVR
    model keeps the clicked rows only)."""
    frame = pd.read_parquet(Path(data_dir) / f"{name}.parquet")
    tasks = task_specs(cfg.tasks)
    labels = [task.label for task in tasks]
    present = [c for c in labels if c in frame.columns]
    if not present:
        raise ValueError(f"{name}.parquet has none of the label columns {labels}")
    keep = frame[present].notna().any(axis=1)
    if any(task.loss_term == "cvr" for task in tasks):
        keep &= frame["click"] == 1 if "click" in frame.columns else False
    if not keep.any():
        raise ValueError(f"{name}.parquet has no row labelled for the tasks {list(cfg.tasks)}")
    if keep.all():  # the multi-task model reads every row: no copy of a million of them
        return frame.reset_index(drop=True)
    return frame.loc[keep].reset_index(drop=True)


def encode_split(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    cfg: ModelConfig,
    cache_dir: Path,
    encoder: TextEncoder | None,
) -> Split:
    return Split(tensor_frame(spec, cfg, frame, cache_dir, encoder), Targets.from_frame(frame))


def load_training_data(
    cfg: ModelConfig, data_dir: Path, cache_dir: Path, encoder: TextEncoder | None
) -> TrainingData:
    """Fit the feature spec on train, then encode train and valid with it."""
    schema = read_schema(Path(data_dir) / SCHEMA_FILE)
    train = read_split(data_dir, "train", cfg)
    valid = read_split(data_dir, "valid", cfg)
    if not cfg.id_embeddings:
        schema = [feature for feature in schema if feature.kind != "id"]
    spec = FeatureSpec.fit(schema, train, cfg.hash_buckets, cfg.text.spell_correct)
    return TrainingData(
        spec=spec,
        train=encode_split(train, spec, cfg, cache_dir, encoder),
        valid=encode_split(valid, spec, cfg, cache_dir, encoder),
    )


def shuffled_batches(n_rows: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Row indices in a random order (the global torch RNG, seeded per epoch by the caller), so
    batches mix impression and judgement rows."""
    order = torch.randperm(n_rows)
    for start in range(0, n_rows, batch_size):
        yield order[start : start + batch_size]


def ordered_batches(n_rows: int, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, n_rows, batch_size):
        yield torch.arange(start, min(start + batch_size, n_rows))
