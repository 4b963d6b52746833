"""Multi-gate Mixture-of-Experts (MMoE).

Ma, Zhao, Yi, Chen, Hong, Chi, "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts", KDD 2018. Every task mixes the same experts with its own softmax
gate, so loosely related tasks can use different experts instead of fighting over one bottom.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtlrec.model.layers import ExpertBank


def mix_experts(gate_logits: torch.Tensor, expert_out: torch.Tensor) -> torch.Tensor:
    """Gate-weighted sum of expert outputs: (B, E) logits, (B, E, D) outputs -> (B, D)."""
    weights = torch.softmax(gate_logits, dim=-1).unsqueeze(-1)  # (B, E, 1)
    return (weights * expert_out).sum(dim=1)  # (B, D)


class MMoE(nn.Module):
    """`n_experts` MLP experts shared by all tasks, one softmax gate per task."""

    def __init__(
        self,
        in_dim: int,
        n_experts: int,
        expert_dims: Sequence[int],
        n_tasks: int,
        dropout: float,
        read_only: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.experts = ExpertBank(in_dim, n_experts, expert_dims, dropout)
        self.gates = nn.ModuleList(nn.Linear(in_dim, n_experts) for _ in range(n_tasks))
        self.read_only = frozenset(read_only)  # tasks that train their gate only
        self.out_dim = self.experts.out_dim

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        experts = self.experts(x)  # (B, E, D)
        outputs = []
        for t, gate in enumerate(self.gates):
            if t in self.read_only:
                outputs.append(mix_experts(gate(x.detach()), experts.detach()))
            else:
                outputs.append(mix_experts(gate(x), experts))  # (B, D)
        return outputs  # n_tasks x (B, D)
