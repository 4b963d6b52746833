"""Multi-gate Mixture-of-Experts (MMoE).

Ma, Zhao, Yi, Chen, Hong, Chi, "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts", KDD 2018. Every task mixes the same experts with its own softmax
gate, so loosely related tasks can use different experts instead of fighting over one bottom.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtlrec.model.layers import ExpertBank, FactoredInput, joint_product, short_softmax


def mix_tasks(
    gate_logits: list[torch.Tensor],
    expert_out: torch.Tensor | Sequence[torch.Tensor],
    columns: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Several tasks' mixes of the same experts as one batched product: T x (B, G) logits,
    (B, E, D) outputs -> T x (B, D). The experts' gradient then comes from one product
    instead of a sum of T elementwise ones. `expert_out` may be several (B, E_i, D) banks,
    read as one concatenated along E without the copy. `columns` (T, G) puts task t's G gate
    outputs on experts columns[t] (PLE), the other experts weighing 0; without it G = E."""
    banks = [expert_out] if isinstance(expert_out, torch.Tensor) else list(expert_out)
    weights = short_softmax(torch.stack(gate_logits, dim=1))  # (B, T, G)
    if columns is not None:  # a scatter: a third of the time of a product with 0/1 placements
        batch, n_experts = weights.shape[0], sum(bank.shape[1] for bank in banks)
        placed = weights.new_zeros((batch, columns.shape[0], n_experts))
        weights = placed.scatter(2, columns.expand(batch, -1, -1), weights)  # (B, T, E)
    return list(_Mix.apply(weights, *banks).unbind(1))  # T x (B, D)


class _Mix(torch.autograd.Function):
    """(B, T, E) weights x (B, E, D) experts -> (B, T, D): `torch.bmm`'s function and gradient.
    The experts may come as several banks (B, E_i, D), E the sum of the E_i: a read-only
    task's own experts and the (detached) shared ones are mixed without being concatenated
    first (a (2,048, 6, 64) copy, ~0.45 ms), and the detached bank gets no gradient computed.

    Why not `torch.bmm` alone: its products are B tiny (T x E) matrices; on CPU its backward for
    the experts (B products of E x T by T x D) cost 2-4 ms a step at B = 1,024, T <= 2, and the
    forward with T = 1 (a read-only task) 0.6 ms. A broadcast product summed over the T tasks
    gives the same numbers in a fraction of that."""

    @staticmethod
    def forward(ctx, weights: torch.Tensor, *banks: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(weights, *banks)
        parts = [
            (w.transpose(1, 2) * bank).sum(1, keepdim=True)  # (B, 1, D)
            if weights.shape[1] == 1
            else torch.bmm(w, bank)  # (B, T, D)
            for bank, w in zip(banks, _bank_weights(weights, banks), strict=True)
        ]
        for part in parts[1:]:
            parts[0].add_(part)
        return parts[0]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        weights, *banks = ctx.saved_tensors
        grad_weights = None
        if ctx.needs_input_grad[0]:
            parts = [
                (grad * bank).sum(-1).unsqueeze(1)  # (B, 1, E_i)
                if weights.shape[1] == 1
                else torch.bmm(grad, bank.transpose(1, 2))  # (B, T, E_i)
                for bank in banks
            ]
            grad_weights = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
        grad_banks: list[torch.Tensor | None] = []
        for i, w in enumerate(_bank_weights(weights, banks)):
            if not ctx.needs_input_grad[1 + i]:
                grad_banks.append(None)
                continue
            grad_bank = w[:, 0].unsqueeze(-1) * grad[:, 0].unsqueeze(1)  # (B, E_i, D)
            for t in range(1, weights.shape[1]):
                grad_bank.addcmul_(w[:, t].unsqueeze(-1), grad[:, t].unsqueeze(1))
            grad_banks.append(grad_bank)
        return grad_weights, *grad_banks


def _bank_weights(weights: torch.Tensor, banks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """(B, T, E) weights split along E into each bank's (B, T, E_i) (views)."""
    if len(banks) == 1:
        return [weights]
    return list(torch.split(weights, [bank.shape[1] for bank in banks], dim=2))


def gated_first_layers(
    x: torch.Tensor | FactoredInput,
    banks: Sequence[tuple[ExpertBank, bool]],
    gates: Sequence[nn.Linear],
    read_only: frozenset[int],
    training: bool,
) -> tuple[list[torch.Tensor | None], list[torch.Tensor]]:
    """Each bank's first product (None: the bank computes its own) and each task's gate logits
    (fp32), for MMoE and PLE. `banks`: (bank, whether it trains x). While training, all of them
    are one product (see `joint_product`), the read-only banks' and `read_only` tasks' gates
    sending x no gradient; in evaluation (fp32, exact) each module computes its own (x a
    tensor then; a `FactoredInput` while training)."""
    if not training:
        logits = [gate(x.detach() if t in read_only else x) for t, gate in enumerate(gates)]
        return [None] * len(banks), logits
    parts = [(*bank.first_layer(), trains_x) for bank, trains_x in banks]
    parts += [(g.weight.t(), g.bias, t not in read_only) for t, g in enumerate(gates)]
    lead = banks[0][0]  # the writing bank: its precision and x's data columns
    out = joint_product(x, parts, lead.train_dtype, lead.numpy_blas, lead.data_columns)
    return list(out[: len(banks)]), [logit.float() for logit in out[len(banks) :]]


class MMoE(nn.Module):
    """`n_experts` MLP experts shared by all tasks, one softmax gate per task. `data_columns`:
    x's column ranges of data, which get no gradient (see `layers._Product`)."""

    def __init__(
        self,
        in_dim: int,
        n_experts: int,
        expert_dims: Sequence[int],
        n_tasks: int,
        dropout: float,
        read_only: Sequence[int] = (),
        data_columns: Sequence[tuple[int, int]] = (),
    ) -> None:
        super().__init__()
        self.experts = ExpertBank(in_dim, n_experts, expert_dims, dropout, data_columns)
        self.gates = nn.ModuleList(nn.Linear(in_dim, n_experts) for _ in range(n_tasks))
        self.read_only = frozenset(read_only)  # tasks that train their gate only
        self.out_dim = self.experts.out_dim

    def forward(self, x: torch.Tensor | FactoredInput) -> list[torch.Tensor]:
        (first,), gate_logits = gated_first_layers(
            x, [(self.experts, True)], self.gates, self.read_only, self.training
        )
        experts = self.experts(x, first)  # (B, E, D)
        tasks = range(len(self.gates))
        writers = [t for t in tasks if t not in self.read_only]
        readers = [t for t in tasks if t in self.read_only]
        outputs: dict[int, torch.Tensor] = {}
        if writers:
            mixed = mix_tasks([gate_logits[t] for t in writers], experts)
            outputs |= dict(zip(writers, mixed, strict=True))
        if readers:
            mixed = mix_tasks([gate_logits[t] for t in readers], experts.detach())
            outputs |= dict(zip(readers, mixed, strict=True))
        return [outputs[t] for t in tasks]  # n_tasks x (B, D)
