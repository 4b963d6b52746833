"""Multi-gate Mixture-of-Experts (MMoE).

Ma, Zhao, Yi, Chen, Hong, Chi, "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts", KDD 2018. Every task mixes the same experts with its own softmax
gate, so loosely related tasks can use different experts instead of fighting over one bottom.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtlrec.model.layers import ExpertBank, short_softmax


def mix_experts(gate_logits: torch.Tensor, expert_out: torch.Tensor) -> torch.Tensor:
    """Gate-weighted sum of expert outputs: (B, E) logits, (B, E, D) outputs -> (B, D)."""
    weights = short_softmax(gate_logits).unsqueeze(1)  # (B, 1, E)
    return torch.bmm(weights, expert_out).squeeze(1)  # (B, D)


def mix_tasks(
    gate_logits: list[torch.Tensor],
    expert_out: torch.Tensor,
    columns: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Several tasks' mixes of the same experts as one batched product: T x (B, G) logits,
    (B, E, D) outputs -> T x (B, D). The experts' gradient then comes from one product
    instead of a sum of T elementwise ones. `columns` (T, G) puts task t's G gate outputs on
    experts columns[t] (PLE), the other experts weighing 0; without it G = E."""
    weights = short_softmax(torch.stack(gate_logits, dim=1))  # (B, T, G)
    if columns is not None:  # a scatter: a third of the time of a product with 0/1 placements
        batch, n_experts = weights.shape[0], expert_out.shape[1]
        placed = weights.new_zeros((batch, columns.shape[0], n_experts))
        weights = placed.scatter(2, columns.expand(batch, -1, -1), weights)  # (B, T, E)
    return list(_Mix.apply(weights, expert_out).unbind(1))  # T x (B, D)


class _Mix(torch.autograd.Function):
    """(B, T, E) weights x (B, E, D) experts -> (B, T, D): `torch.bmm`'s function and gradient.

    Why not `torch.bmm` alone: its products are B tiny (T x E) matrices; on CPU its backward for
    the experts (B products of E x T by T x D) cost 2-4 ms a step at B = 1,024, T <= 2, and the
    forward with T = 1 (a read-only task) 0.6 ms. A broadcast product summed over the T tasks
    gives the same numbers in a fraction of that."""

    @staticmethod
    def forward(ctx, weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(weights, experts)
        if weights.shape[1] == 1:
            return (weights.transpose(1, 2) * experts).sum(1, keepdim=True)  # (B, 1, D)
        return torch.bmm(weights, experts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:  # type: ignore[override]
        weights, experts = ctx.saved_tensors
        grad_weights = grad_experts = None
        if ctx.needs_input_grad[0]:
            if weights.shape[1] == 1:
                grad_weights = (grad * experts).sum(-1).unsqueeze(1)  # (B, 1, E)
            else:
                grad_weights = torch.bmm(grad, experts.transpose(1, 2))  # (B, T, E)
        if ctx.needs_input_grad[1]:
            grad_experts = weights[:, 0].unsqueeze(-1) * grad[:, 0].unsqueeze(1)  # (B, E, D)
            for t in range(1, weights.shape[1]):
                grad_experts.addcmul_(weights[:, t].unsqueeze(-1), grad[:, t].unsqueeze(1))
        return grad_weights, grad_experts


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
        tasks = range(len(self.gates))
        writers = [t for t in tasks if t not in self.read_only]
        readers = [t for t in tasks if t in self.read_only]
        outputs: dict[int, torch.Tensor] = {}
        if writers:
            mixed = mix_tasks([self.gates[t](x) for t in writers], experts)
            outputs |= dict(zip(writers, mixed, strict=True))
        if readers:
            seen = x.detach()
            mixed = mix_tasks([self.gates[t](seen) for t in readers], experts.detach())
            outputs |= dict(zip(readers, mixed, strict=True))
        return [outputs[t] for t in tasks]  # n_tasks x (B, D)
