"""Shared-bottom multi-task network.

Caruana, "Multitask Learning", Machine Learning 28, 1997: every task reads the same hidden
representation computed by one MLP (hard parameter sharing); only the towers are task-specific.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtlrec.model.layers import MLP


class SharedBottom(nn.Module):
    """One MLP whose output feeds every task tower."""

    def __init__(self, in_dim: int, dims: Sequence[int], n_tasks: int, dropout: float) -> None:
        super().__init__()
        self.mlp = MLP(in_dim, dims, dropout)
        self.n_tasks = n_tasks
        self.out_dim = self.mlp.out_dim

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        hidden = self.mlp(x)  # (B, out_dim)
        return [hidden] * self.n_tasks  # n_tasks x (B, out_dim)
