"""Masked multi-task losses and their weighting.

Each term is averaged over the rows that carry its label (a NaN label means "not this row's kind"),
so impression rows never feed the relevance loss and judgement rows never feed ctr; a batch without
any row of a kind contributes exactly 0 to that term, never NaN. Weights are static or learned by
uncertainty weighting (Kendall, Gal, Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
Losses for Scene Geometry and Semantics", CVPR 2018).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from mtlrec.model.multitask import TaskOutputs
from mtlrec.model.tasks import LossTerm, TaskSpec

LOG_P_MAX = -1e-7  # keeps log(1 - p_ctcvr) finite when p_ctcvr rounds to 1


@dataclass(frozen=True)
class Targets:
    """Labels of a batch, NaN where the row is of the other kind."""

    click: torch.Tensor  # (B,)
    purchase: torch.Tensor  # (B,)
    relevance: torch.Tensor  # (B,)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Targets:
        def column(name: str) -> torch.Tensor:
            if name not in frame.columns:
                return torch.full((len(frame),), float("nan"))
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(
                np.float32, na_value=np.nan
            )
            return torch.from_numpy(values)

        return cls(column("click"), column("purchase"), column("relevance"))

    def take(self, rows: torch.Tensor) -> Targets:
        labels = (self.click, self.purchase, self.relevance)
        return Targets(*(label.index_select(0, rows) for label in labels))

    def priors(self) -> dict[str, float]:
        """Mean label of each task over the rows that carry it: click rate, purchases per
        click, mean grade; a task without any labelled row is left out."""
        clicks = self.click.nansum()
        means = {
            "ctr": self.click.nanmean(),
            "cvr": self.purchase.nansum() / clicks if clicks > 0 else torch.tensor(float("nan")),
            "relevance": self.relevance.nanmean(),
        }
        return {task: float(value) for task, value in means.items() if torch.isfinite(value)}


@dataclass(frozen=True)
class TermLoss:
    """Mean loss over the rows that carry the label, and how many rows that was."""

    value: torch.Tensor  # () scalar
    count: int


@dataclass
class LossTally:
    """Row-weighted running means of loss terms over many batches."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, losses: Mapping[str, TermLoss]) -> None:
        for term, loss in losses.items():
            self.sums[term] = self.sums.get(term, 0.0) + loss.value.item() * loss.count
            self.counts[term] = self.counts.get(term, 0) + loss.count

    def means(self) -> dict[str, float]:
        return {term: total / max(self.counts[term], 1) for term, total in self.sums.items()}


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask`; 0 (not NaN) for an empty mask."""
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def log1mexp(log_p: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable at both ends (Maechler, 2012)."""
    return torch.where(
        log_p > -math.log(2.0), torch.log(-torch.expm1(log_p)), torch.log1p(-torch.exp(log_p))
    )


def ctr_loss(outputs: TaskOutputs, targets: Targets) -> TermLoss:
    mask = ~torch.isnan(targets.click)  # (B,) impression rows
    labels = torch.where(mask, targets.click, 0.0)  # NaN * 0 would still be NaN
    bce = F.binary_cross_entropy_with_logits(outputs.ctr_logit, labels, reduction="none")
    return TermLoss(masked_mean(bce, mask), int(mask.sum()))


def ctcvr_loss(outputs: TaskOutputs, targets: Targets) -> TermLoss:
    """ESMM: BCE of p_ctr * p_cvr against purchase on every impression, in log space."""
    mask = ~torch.isnan(targets.click) & ~torch.isnan(targets.purchase)  # (B,)
    labels = torch.where(mask, targets.purchase, 0.0)
    log_p = outputs.log_p_ctcvr.clamp(max=LOG_P_MAX)  # (B,)
    bce = -(labels * log_p + (1.0 - labels) * log1mexp(log_p))  # (B,)
    return TermLoss(masked_mean(bce, mask), int(mask.sum()))


def cvr_loss(outputs: TaskOutputs, targets: Targets) -> TermLoss:
    """The single-task CVR term: BCE of p_cvr against purchase on the clicked rows only."""
    mask = (targets.click == 1) & ~torch.isnan(targets.purchase)  # (B,)
    labels = torch.where(mask, targets.purchase, 0.0)
    bce = F.binary_cross_entropy_with_logits(outputs.cvr_logit, labels, reduction="none")
    return TermLoss(masked_mean(bce, mask), int(mask.sum()))


def relevance_loss(outputs: TaskOutputs, targets: Targets) -> TermLoss:
    mask = ~torch.isnan(targets.relevance)  # (B,) judgement rows
    labels = torch.where(mask, targets.relevance, 0.0)
    squared = (outputs.relevance - labels) ** 2  # (B,)
    return TermLoss(masked_mean(squared, mask), int(mask.sum()))


LOSS_FUNCTIONS = {
    "ctr": ctr_loss,
    "ctcvr": ctcvr_loss,
    "cvr": cvr_loss,
    "relevance": relevance_loss,
}


def compute_losses(
    outputs: TaskOutputs,
    targets: Targets,
    tasks: tuple[TaskSpec, ...],
    aux: tuple[LossTerm, ...] = (),
) -> dict[LossTerm, TermLoss]:
    """One masked term per configured task (cvr contributes the ESMM term `ctcvr`), then the
    auxiliary terms (see `auxiliary_terms`)."""
    terms = [task.loss_term for task in tasks] + [term for term in aux]
    return {term: LOSS_FUNCTIONS[term](outputs, targets) for term in terms}


def auxiliary_terms(
    tasks: tuple[TaskSpec, ...], weights: Mapping[str, float]
) -> tuple[LossTerm, ...]:
    """Extra terms besides the tasks' own: with ESMM and a positive `cvr` weight, the direct CVR
    loss on the clicked rows too. ESMM alone reaches the CVR tower only through p_ctr * p_cvr,
    whose log loss is ~10x smaller than the click loss (purchases are rare): the tower then gets
    little of the shared representation's attention. The clicked-row term is what a single-task
    CVR model learns from; ESMM's entire-space term stays beside it."""
    esmm = any(task.loss_term == "ctcvr" for task in tasks)
    return ("cvr",) if esmm and weights.get("cvr", 0.0) > 0.0 else ()


def _logit(probability: float) -> float:
    probability = min(max(probability, 1e-6), 1.0 - 1e-6)
    return math.log(probability / (1.0 - probability))


@torch.no_grad()
def constant_losses(
    tasks: tuple[TaskSpec, ...],
    priors: Mapping[str, float],
    targets: Targets,
    aux: tuple[LossTerm, ...] = (),
) -> dict[LossTerm, float]:
    """Each term's loss when every row is predicted at its training prior (`Targets.priors`):
    the normaliser of the normalized entropy (He et al., "Practical Lessons from Predicting
    Clicks on Ads at Facebook", ADKDD 2014), so terms on different scales can be compared."""
    n_rows = len(targets.click)
    outputs = TaskOutputs(
        ctr_logit=torch.full((n_rows,), _logit(priors.get("ctr", 0.5))),
        cvr_logit=torch.full((n_rows,), _logit(priors.get("cvr", 0.5))),
        relevance=torch.full((n_rows,), priors.get("relevance", 0.0)),
    )
    losses = compute_losses(outputs, targets, tasks, aux)
    return {term: loss.value.item() for term, loss in losses.items()}


class LossWeighting(nn.Module):
    """Static: sum of w_i * L_i. Uncertainty: sum of exp(-s_i) * L_i + s_i, s_i = log sigma_i^2
    learned (the 1/2 factors of the paper are absorbed in s_i); a term absent from the batch adds
    nothing, not even its s_i, which would otherwise drift without a loss to balance it."""

    def __init__(
        self, terms: tuple[LossTerm, ...], mode: str, static_weights: Mapping[str, float]
    ) -> None:
        super().__init__()
        self.terms = terms
        self.mode = mode
        self.static = {term: float(static_weights.get(term, 1.0)) for term in terms}
        self.log_vars = nn.Parameter(torch.zeros(len(terms))) if mode == "uncertainty" else None

    def forward(self, losses: Mapping[str, TermLoss]) -> torch.Tensor:
        total = torch.zeros(())
        for i, term in enumerate(self.terms):
            loss = losses[term]
            if loss.count == 0:
                continue
            if self.log_vars is None:
                total = total + self.static[term] * loss.value
            else:
                total = total + torch.exp(-self.log_vars[i]) * loss.value + self.log_vars[i]
        return total

    def weights(self) -> dict[str, float]:
        """The current effective weight of each term (for the training curve)."""
        if self.log_vars is None:
            return dict(self.static)
        log_vars = self.log_vars.detach()
        return {t: float(torch.exp(-s)) for t, s in zip(self.terms, log_vars, strict=True)}
