"""Configs for unit tests: the model with every optional part off, built explicitly.

The code defaults are the pipeline's (params.yaml); these tests check the plain architecture
(shared bottom, id embeddings, no term gating or spelling correction, a constant learning rate)
and say so here, once, instead of relying on defaults.
"""

from __future__ import annotations

from typing import Any

from mtlrec.config import ModelConfig, TextConfig, TrainConfig

PLAIN_TEXT: dict[str, Any] = {
    "word_match": False,
    "term_gating": False,
    "term_buckets": 0,
    "spell_correct": False,
}
PLAIN_MODEL: dict[str, Any] = {
    "bottom": "shared_bottom",
    "id_embeddings": True,
    "field_interactions": False,
    "bias_features": (),
    "read_only_tasks": (),
}
PLAIN_TRAIN: dict[str, Any] = {
    "lr_schedule": "constant",
    "selection": "loss",
    "loss_weights": {"ctr": 1.0, "ctcvr": 1.0, "relevance": 1.0},
}


def plain_text(**overrides: Any) -> TextConfig:
    return TextConfig(**{**PLAIN_TEXT, **overrides})


def plain_model(**overrides: Any) -> ModelConfig:
    overrides.setdefault("text", plain_text())
    return ModelConfig(**{**PLAIN_MODEL, **overrides})


def plain_train(**overrides: Any) -> TrainConfig:
    return TrainConfig(**{**PLAIN_TRAIN, **overrides})
