"""Progressive Layered Extraction (PLE), with one extraction layer: Customized Gate Control.

Tang, Liu, Zhao, Gong, "Progressive Layered Extraction (PLE): A Novel Multi-Task Learning (MTL)
Model for Personalized Recommendations", RecSys 2020. Each task has its own experts besides the
shared ones; its gate mixes only its own and the shared experts, which limits the seesaw effect
where one task's gain is another's loss. One extraction layer (CGC) is enough at this scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtlrec.model.layers import MLP
from mtlrec.model.mmoe import mix_experts


class PLE(nn.Module):
    """`n_task_experts` experts per task plus `n_shared_experts` shared ones, a gate per task."""

    def __init__(
        self,
        in_dim: int,
        n_task_experts: int,
        n_shared_experts: int,
        expert_dims: Sequence[int],
        n_tasks: int,
        dropout: float,
        read_only: Sequence[int] = (),
    ) -> None:
        super().__init__()

        def experts(count: int) -> nn.ModuleList:
            return nn.ModuleList(MLP(in_dim, expert_dims, dropout) for _ in range(count))

        self.task_experts = nn.ModuleList(experts(n_task_experts) for _ in range(n_tasks))
        self.shared_experts = experts(n_shared_experts)
        n_gated = n_task_experts + n_shared_experts
        self.gates = nn.ModuleList(nn.Linear(in_dim, n_gated) for _ in range(n_tasks))
        # Tasks that read the shared experts and inputs without writing them: their losses train
        # only their own experts and gate (see `ModelConfig.read_only_tasks`).
        self.read_only = frozenset(read_only)
        self.out_dim = self.shared_experts[0].out_dim

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        shared = [expert(x) for expert in self.shared_experts]  # S x (B, D)
        outputs = []
        for t, (own_experts, gate) in enumerate(zip(self.task_experts, self.gates, strict=True)):
            reads, seen = (
                (x.detach(), [s.detach() for s in shared]) if t in self.read_only else (x, shared)
            )
            own = [expert(reads) for expert in own_experts]  # K x (B, D)
            candidates = torch.stack(own + seen, dim=1)  # (B, K + S, D)
            outputs.append(mix_experts(gate(reads), candidates))  # (B, D)
        return outputs  # n_tasks x (B, D)
