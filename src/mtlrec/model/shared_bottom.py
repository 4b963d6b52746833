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

    def __init__(
        self,
        in_dim: int,
        dims: Sequence[int],
        n_tasks: int,
        dropout: float,
        read_only: Sequence[int] = (),
        data_columns: Sequence[tuple[int, int]] = (),
    ) -> None:
        super().__init__()
        self.mlp = MLP(in_dim, dims, dropout, data_columns)
        self.n_tasks = n_tasks
        self.read_only = frozenset(read_only)  # tasks whose losses leave the bottom alone
        self.out_dim = self.mlp.out_dim

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        hidden = self.mlp(x)  # (B, out_dim)
        # n_tasks x (B, out_dim)
        return [hidden.detach() if t in self.read_only else hidden for t in range(self.n_tasks)]
