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

from mtlrec.model.layers import ExpertBank, FactoredInput
from mtlrec.model.mmoe import gated_first_layers, mix_tasks


def _columns(columns: list[list[int]], n_gated: int) -> torch.Tensor:
    """(T, G): gate output g of task t weighs expert `columns[t][g]` of a bank."""
    return torch.tensor(columns, dtype=torch.long).reshape(len(columns), n_gated)


class PLE(nn.Module):
    """`n_task_experts` experts per task plus `n_shared_experts` shared ones, a gate per task.

    The experts that read the inputs with gradient (the shared ones and the writing tasks' own)
    are one `ExpertBank`, shared first; a read-only task's own experts read detached inputs, so
    they are a second bank. `data_columns`: x's column ranges of data, which get no gradient
    (see `layers._Product`).
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
        data_columns: Sequence[tuple[int, int]] = (),
    ) -> None:
        super().__init__()
        # Tasks that read the shared experts and inputs without writing them: their losses train
        # only their own experts and gate (see `ModelConfig.read_only_tasks`).
        self.read_only = frozenset(read_only)
        self.n_task_experts, self.n_shared_experts = n_task_experts, n_shared_experts
        writers = [t for t in range(n_tasks) if t not in self.read_only]
        readers = [t for t in range(n_tasks) if t in self.read_only]
        n_writing = n_shared_experts + n_task_experts * len(writers)
        n_read = n_task_experts * len(readers)
        self.experts = ExpertBank(in_dim, n_writing, expert_dims, dropout, data_columns)
        self.read_only_experts = (
            ExpertBank(in_dim, n_read, expert_dims, dropout) if readers else None
        )
        n_gated = n_task_experts + n_shared_experts
        self.gates = nn.ModuleList(nn.Linear(in_dim, n_gated) for _ in range(n_tasks))
        self.out_dim = self.experts.out_dim
        self.writers, self.readers = writers, readers
        # A gate's outputs weigh its task's own experts, then the shared ones. Each group of
        # tasks mixes one whole bank, its gate weights placed on their experts' columns (zero
        # weight on the experts a task does not see): one batched product, and no slice of the
        # bank whose gradient would be a zero-filled copy of it. The writing bank holds the
        # shared experts, then each writer's; the readers' bank their own experts, then the
        # (detached) shared ones.
        k, n_shared = n_task_experts, n_shared_experts
        shared = list(range(n_shared))
        write_columns = [
            [*range(n_shared + i * k, n_shared + (i + 1) * k), *shared] for i in range(len(writers))
        ]
        read_columns = [
            [*range(r * k, (r + 1) * k), *(n_read + e for e in shared)] for r in range(len(readers))
        ]
        self.register_buffer("write_columns", _columns(write_columns, n_gated), persistent=False)
        self.register_buffer("read_columns", _columns(read_columns, n_gated), persistent=False)

    def forward(self, x: torch.Tensor | FactoredInput) -> list[torch.Tensor]:
        banks = [(self.experts, True)]
        if self.read_only_experts is not None:
            banks.append((self.read_only_experts, False))
        firsts, gate_logits = gated_first_layers(
            x, banks, self.gates, self.read_only, self.training
        )
        bank = self.experts(x, firsts[0])  # (B, S + K * writers, D)
        outputs: dict[int, torch.Tensor] = {}
        if self.writers:
            logits = [gate_logits[t] for t in self.writers]
            mixed = mix_tasks(logits, bank, self.write_columns)
            outputs |= dict(zip(self.writers, mixed, strict=True))
        if self.read_only_experts is not None:
            shared = bank[:, : self.n_shared_experts].detach()  # read, never written
            seen = x.detach() if firsts[1] is None else x  # x only when it has no product
            own = self.read_only_experts(seen, firsts[1])  # (B, K * R, D)
            logits = [gate_logits[t] for t in self.readers]
            mixed = mix_tasks(logits, [own, shared], self.read_columns)  # own, then shared
            outputs |= dict(zip(self.readers, mixed, strict=True))
        return [outputs[t] for t in range(len(self.gates))]  # n_tasks x (B, D)
