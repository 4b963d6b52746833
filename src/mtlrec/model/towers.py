"""Task towers: one small MLP per task on top of its bottom output, ending in one scalar."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtlrec.model.layers import MLP


class Tower(nn.Module):
    """MLP -> Linear(., 1): the raw output (a logit, or a pre-activation score) of one task."""

    def __init__(self, in_dim: int, dims: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.mlp = MLP(in_dim, dims, dropout)
        self.head = nn.Linear(self.mlp.out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mlp(x)).squeeze(-1)  # (B, in_dim) -> (B,)
