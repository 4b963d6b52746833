"""Small building blocks shared by the bottoms and towers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """Linear -> ReLU -> Dropout, once per entry of `dims`; `out_dim` is the last width."""

    def __init__(self, in_dim: int, dims: Sequence[int], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for dim in dims:
            layers += [nn.Linear(width, dim), nn.ReLU(), nn.Dropout(dropout)]
            width = dim
        self.net = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, in_dim) -> (B, out_dim)
