"""Small building blocks shared by the bottoms and towers."""

from __future__ import annotations

import math
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


class ExpertBank(nn.Module):
    """`n` experts of the same shape (`MLP(in_dim, dims, dropout)` each) computed together: one
    matrix product per layer for all of them instead of one small one per expert. On one CPU
    thread that is ~15% faster for the bottoms' 10+ experts, with fewer autograd nodes; each
    expert keeps its own weights and the same initialisation as `nn.Linear`."""

    def __init__(self, in_dim: int, n: int, dims: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.n = n
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        width = in_dim
        for dim in dims:
            bound = 1.0 / math.sqrt(width)  # nn.Linear's default: U(-1/sqrt(fan_in), ...)
            self.weights.append(nn.Parameter(torch.empty(n, width, dim).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, dim).uniform_(-bound, bound)))
            width = dim
        self.dropout = nn.Dropout(dropout)
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, n, out_dim)."""
        h = x.unsqueeze(1).expand(-1, self.n, -1)  # (B, n, in_dim), no copy
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if layer == 0:  # every expert reads the same x: one (B, in) x (in, n * d) product
                flat = weight.permute(1, 0, 2).reshape(weight.shape[1], -1)
                h = torch.addmm(bias.reshape(-1), x, flat).view(x.shape[0], self.n, -1)
            else:
                h = torch.einsum("bni,nio->bno", h, weight) + bias
            h = self.dropout(torch.relu(h))
        return h
