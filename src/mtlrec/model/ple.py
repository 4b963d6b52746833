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

from mtlrec.model.layers import ExpertBank
from mtlrec.model.mmoe import mix_experts


class PLE(nn.Module):
    """`n_task_experts` experts per task plus `n_shared_experts` shared ones, a gate per task.

    The experts that read the inputs with gradient (the shared ones and the writing tasks' own)
    are one `ExpertBank`, shared first; a read-only task's own experts read detached inputs, so
    they are a second bank.
    """

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
        # Tasks that read the shared experts and inputs without writing them: their losses train
        # only their own experts and gate (see `ModelConfig.read_only_tasks`).
        self.read_only = frozenset(read_only)
        self.n_task_experts, self.n_shared_experts = n_task_experts, n_shared_experts
        writers = [t for t in range(n_tasks) if t not in self.read_only]
        readers = [t for t in range(n_tasks) if t in self.read_only]
        # Where each task's own experts sit: (bank, first index) with bank 0 the writing one.
        self.own = {t: (0, n_shared_experts + i * n_task_experts) for i, t in enumerate(writers)}
        self.own |= {t: (1, i * n_task_experts) for i, t in enumerate(readers)}
        n_writing = n_shared_experts + n_task_experts * len(writers)
        self.experts = ExpertBank(in_dim, n_writing, expert_dims, dropout)
        self.read_only_experts = (
            ExpertBank(in_dim, n_task_experts * len(readers), expert_dims, dropout)
            if readers
            else None
        )
        n_gated = n_task_experts + n_shared_experts
        self.gates = nn.ModuleList(nn.Linear(in_dim, n_gated) for _ in range(n_tasks))
        self.out_dim = self.experts.out_dim

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        banks = [self.experts(x)]  # (B, S + K * writers, D)
        if self.read_only_experts is not None:
            banks.append(self.read_only_experts(x.detach()))  # (B, K * readers, D)
        shared = banks[0][:, : self.n_shared_experts]  # (B, S, D)
        outputs = []
        for t, gate in enumerate(self.gates):
            bank, first = self.own[t]
            own = banks[bank][:, first : first + self.n_task_experts]  # (B, K, D)
            if t in self.read_only:
                reads, seen = x.detach(), shared.detach()
            else:
                reads, seen = x, shared
            candidates = torch.cat([own, seen], dim=1)  # (B, K + S, D)
            outputs.append(mix_experts(gate(reads), candidates))  # (B, D)
        return outputs  # n_tasks x (B, D)
