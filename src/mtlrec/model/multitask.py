"""The multi-task model: shared input representation -> bottom -> one tower per task.

Inputs: embeddings of ids and categoricals, standardised numerics (with missing flags), a projection
of every text feature's sentence embedding, and query-text interactions (cosine similarity and a
projected elementwise product of the `query` with each other text; zero when the query is null).
CVR follows ESMM (Ma et al., "Entire Space Multi-Task Model", SIGIR 2018): p_ctcvr = p_ctr * p_cvr
is trained on all impressions, so the CVR tower is never fitted on the clicked rows alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mtlrec.config import ModelConfig
from mtlrec.model.inputs import FeatureSpec, ModelInputs
from mtlrec.model.mmoe import MMoE
from mtlrec.model.ple import PLE
from mtlrec.model.shared_bottom import SharedBottom
from mtlrec.model.tasks import RELEVANCE_MAX, task_specs
from mtlrec.model.text import TextEncoder, build_text_encoder, encoder_dim
from mtlrec.model.towers import Tower

EMBEDDING_INIT_STD = 0.05  # small: rarely seen hash buckets should start close to "no signal"


@dataclass(frozen=True)
class TaskOutputs:
    """Raw outputs of the configured tasks; None for a task the model does not have."""

    ctr_logit: torch.Tensor | None = None  # (B,)
    cvr_logit: torch.Tensor | None = None  # (B,)
    relevance: torch.Tensor | None = None  # (B,) graded 0..3

    @property
    def p_ctr(self) -> torch.Tensor | None:
        return None if self.ctr_logit is None else torch.sigmoid(self.ctr_logit)

    @property
    def p_cvr(self) -> torch.Tensor | None:
        return None if self.cvr_logit is None else torch.sigmoid(self.cvr_logit)

    @property
    def log_p_ctcvr(self) -> torch.Tensor | None:
        """log(p_ctr * p_cvr), exact in log space: a product of tiny probabilities stays finite."""
        if self.ctr_logit is None or self.cvr_logit is None:
            return None
        return F.logsigmoid(self.ctr_logit) + F.logsigmoid(self.cvr_logit)  # (B,)

    @property
    def p_ctcvr(self) -> torch.Tensor | None:
        log_p = self.log_p_ctcvr
        return None if log_p is None else torch.exp(log_p)


class FieldEmbedding(nn.Module):
    """All id/categorical fields in one table (row offsets per field): one gather per batch."""

    def __init__(self, field_sizes: list[int], dim: int) -> None:
        super().__init__()
        offsets = torch.tensor([0, *field_sizes[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets[: len(field_sizes)], persistent=False)
        self.table = nn.Embedding(max(sum(field_sizes), 1), dim)
        nn.init.normal_(self.table.weight, std=EMBEDDING_INIT_STD)
        self.out_dim = len(field_sizes) * dim

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        rows = fields + self.offsets  # (B, F)
        return self.table(rows).flatten(1)  # (B, F * E)


def build_bottom(cfg: ModelConfig, in_dim: int, n_tasks: int) -> SharedBottom | MMoE | PLE:
    """The configured bottom; for PLE, `n_experts` is the number of experts of each task."""
    if cfg.bottom == "mmoe":
        return MMoE(in_dim, cfg.n_experts, cfg.expert_dims, n_tasks, cfg.dropout)
    if cfg.bottom == "ple":
        return PLE(
            in_dim, cfg.n_experts, cfg.n_shared_experts, cfg.expert_dims, n_tasks, cfg.dropout
        )
    return SharedBottom(in_dim, cfg.bottom_dims, n_tasks, cfg.dropout)


class TextFeatures(nn.Module):
    """Per-text projections plus query x text interactions (cosine, projected product)."""

    def __init__(self, n_texts: int, query_index: int | None, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.projections = nn.ModuleList(nn.Linear(in_dim, out_dim) for _ in range(n_texts))
        self.query_index = query_index
        self.partners = [t for t in range(n_texts) if query_index is not None and t != query_index]
        # No bias: a null (zero) text then gives a zero product, whatever was learned.
        self.pair_projection = nn.Linear(in_dim, out_dim, bias=False)
        self.out_dim = n_texts * out_dim + len(self.partners) * (out_dim + 1)

    def forward(self, embeddings: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        embeddings = embeddings * present.unsqueeze(-1).to(embeddings.dtype)  # (B, T, D)
        parts = [proj(embeddings[:, t]) for t, proj in enumerate(self.projections)]  # (B, K) each
        if self.partners:
            query = embeddings[:, self.query_index]  # (B, D)
            query_proj = self.pair_projection(query)  # (B, K)
            for t in self.partners:
                other = embeddings[:, t]  # (B, D)
                cosine = F.cosine_similarity(query, other, dim=-1, eps=1e-8)  # (B,), 0 if null
                parts += [cosine.unsqueeze(-1), query_proj * self.pair_projection(other)]
        if not parts:
            return embeddings.new_zeros((embeddings.shape[0], 0))
        return torch.cat(parts, dim=-1)  # (B, out_dim)


class MultiTaskModel(nn.Module):
    """Embeddings + dense + text -> bottom (shared_bottom | mmoe | ple) -> a tower per task."""

    def __init__(
        self, cfg: ModelConfig, spec: FeatureSpec, text_encoder: TextEncoder | None = None
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.tasks = task_specs(cfg.tasks)
        self.embedding = FieldEmbedding(spec.field_sizes, cfg.embedding_dim)
        self.text_encoder: TextEncoder | None = None
        if cfg.text.finetune_layers > 0:  # only a trained encoder is part of the model
            self.text_encoder = (
                text_encoder if text_encoder is not None else build_text_encoder(cfg.text)
            )
        text_in = encoder_dim(cfg.text)
        self.text = TextFeatures(len(spec.texts), spec.query_index, text_in, cfg.text_dim)
        self.in_dim = self.embedding.out_dim + spec.dense_dim + self.text.out_dim
        self.bottom = build_bottom(cfg, self.in_dim, len(self.tasks))
        self.towers = nn.ModuleDict(
            {
                task.name: Tower(self.bottom.out_dim, cfg.tower_dims, cfg.dropout)
                for task in self.tasks
            }
        )

    def text_embeddings(self, inputs: ModelInputs) -> torch.Tensor:
        if inputs.text_embeddings is not None:
            return inputs.text_embeddings  # (B, T, D) from the frozen cache
        if self.text_encoder is None or inputs.text_tokens is None:
            raise ValueError("inputs carry neither text embeddings nor tokens for the encoder")
        tokens = inputs.text_tokens
        distinct = self.text_encoder(tokens.input_ids, tokens.attention_mask)  # (U, D)
        return distinct[tokens.index]  # (B, T, D)

    def features(self, inputs: ModelInputs) -> torch.Tensor:
        text = self.text(self.text_embeddings(inputs), inputs.text_present)  # (B, text out)
        ids = self.embedding(inputs.fields)  # (B, F * E)
        return torch.cat([ids, inputs.dense, text], dim=-1)  # (B, in_dim)

    def forward(self, inputs: ModelInputs) -> TaskOutputs:
        hidden = self.bottom(self.features(inputs))  # n_tasks x (B, H)
        raw = {
            task.name: self.towers[task.name](h)  # (B,)
            for task, h in zip(self.tasks, hidden, strict=True)
        }
        relevance = raw.get("relevance")
        return TaskOutputs(
            ctr_logit=raw.get("ctr"),
            cvr_logit=raw.get("cvr"),
            relevance=None if relevance is None else RELEVANCE_MAX * torch.sigmoid(relevance),
        )
