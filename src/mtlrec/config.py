"""Typed, frozen configuration mirroring `params.yaml`.

Every section is a frozen pydantic model that forbids unknown keys, so a typo in `params.yaml`
fails loudly with the dotted path of the offending key instead of being silently ignored.
Each pipeline stage receives only its own section.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

TaskName = Literal["ctr", "cvr", "relevance"]
BottomName = Literal["shared_bottom", "mmoe", "ple"]


class ConfigError(ValueError):
    """`params.yaml` is missing, malformed, or has an unknown or mistyped key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulationSize(_Section):
    """How big the synthetic shop is."""

    n_users: int = Field(gt=0)
    n_items: int = Field(gt=0)
    n_days: int = Field(gt=0)
    impressions_per_day: int = Field(gt=0)
    n_judged_queries: int = Field(gt=0)
    judgments_per_query: int = Field(gt=0)


class SimulateConfig(_Section):
    seed: int = 7
    start_date: date = date(2026, 1, 1)
    search_share: float = Field(default=0.5, ge=0.0, le=1.0)
    size: str = "default"
    sizes: dict[str, SimulationSize]

    @model_validator(mode="after")
    def _size_exists(self) -> SimulateConfig:
        if self.size not in self.sizes:
            raise ValueError(f"size {self.size!r} is not one of the sizes {sorted(self.sizes)}")
        return self

    @property
    def active(self) -> SimulationSize:
        return self.sizes[self.size]


class ValidateConfig(_Section):
    # "fail": a row-level violation rejects the whole batch; "split": bad rows are quarantined
    # with their reason and the good rows go on.
    row_policy: Literal["fail", "split"] = "fail"


class FeaturesConfig(_Section):
    feature_service: str = "mtl_v1"
    windows_days: tuple[int, ...] = (1, 7, 30)


class DatasetConfig(_Section):
    # Impressions are split by time: the last `test_days` days are test, the `valid_days` before
    # them validation. Judgements are split by query so that no query is in two splits.
    valid_days: int = Field(default=2, gt=0)
    test_days: int = Field(default=2, gt=0)
    judgment_valid_share: float = Field(default=0.15, gt=0.0, lt=0.5)
    judgment_test_share: float = Field(default=0.15, gt=0.0, lt=0.5)


class TextConfig(_Section):
    # "minilm" is the pretrained all-MiniLM-L6-v2 from site-packages; "tiny" a small random BERT
    # built from a config (fast, for tests).
    encoder: Literal["minilm", "tiny"] = "minilm"
    max_length: int = Field(default=32, gt=0)
    batch_size: int = Field(default=128, gt=0)
    # 0 keeps the encoder frozen with cached embeddings; N > 0 fine-tunes its top N layers.
    finetune_layers: int = Field(default=0, ge=0)


class ModelConfig(_Section):
    bottom: BottomName = "shared_bottom"
    tasks: tuple[TaskName, ...] = ("ctr", "cvr", "relevance")
    embedding_dim: int = Field(default=16, gt=0)
    hash_buckets: int = Field(default=20_000, gt=0)
    text_dim: int = Field(default=32, gt=0)
    bottom_dims: tuple[int, ...] = (128, 64)
    n_experts: int = Field(default=4, gt=0)
    n_shared_experts: int = Field(default=2, gt=0)
    expert_dims: tuple[int, ...] = (64,)
    tower_dims: tuple[int, ...] = (32,)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    text: TextConfig = TextConfig()

    @model_validator(mode="after")
    def _cvr_needs_ctr(self) -> ModelConfig:
        if "cvr" in self.tasks and "ctr" not in self.tasks:
            raise ValueError("task 'cvr' is trained ESMM-style as ctr * cvr and needs task 'ctr'")
        if len(set(self.tasks)) != len(self.tasks) or not self.tasks:
            raise ValueError(f"tasks must be non-empty and distinct, got {list(self.tasks)}")
        return self


class TrainConfig(_Section):
    seed: int = 0
    epochs: int = Field(default=5, gt=0)
    batch_size: int = Field(default=512, gt=0)
    lr: float = Field(default=2e-3, gt=0.0)
    weight_decay: float = Field(default=1e-4, ge=0.0)
    patience: int = Field(default=2, ge=1)
    loss_weighting: Literal["static", "uncertainty"] = "static"
    # Static weights of the loss terms: "ctr", "ctcvr" (the ESMM term of cvr), "relevance".
    loss_weights: dict[Literal["ctr", "ctcvr", "relevance"], float] = {
        "ctr": 1.0,
        "ctcvr": 1.0,
        "relevance": 1.0,
    }


class EvaluateConfig(_Section):
    ndcg_k: int = Field(default=10, gt=0)


class GateConfig(_Section):
    """Champion/challenger gate. Metrics are named `<task>.<metric>` as in metrics JSON."""

    primary_metric: str = "ctcvr.auc"
    # The challenger must beat the champion's primary metric by more than this.
    min_improvement: float = Field(default=0.0, ge=0.0)
    # ...and no watched metric may fall more than this below the champion's.
    max_regression: float = Field(default=0.01, ge=0.0)
    watched: tuple[str, ...] = ("ctr.auc", "cvr.auc", "ctcvr.auc", "relevance.ndcg@10")
    force_promote: bool = False


class Params(_Section):
    simulate: SimulateConfig
    validate_: ValidateConfig = Field(default=ValidateConfig(), alias="validate")
    features: FeaturesConfig = FeaturesConfig()
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    gate: GateConfig = GateConfig()


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "<root>"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def parse_params(raw: dict) -> Params:
    """Build the typed config from a parsed `params.yaml` mapping."""
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"invalid params:\n{_describe(error)}") from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Load and validate `params.yaml`; raise ConfigError naming every bad key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return parse_params(raw)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
