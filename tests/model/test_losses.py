"""Masked losses, the numerically safe ESMM term, and loss weighting."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from mtlrec.model.losses import (
    LossWeighting,
    Targets,
    compute_losses,
    constant_losses,
    ctcvr_loss,
)
from mtlrec.model.multitask import TaskOutputs
from mtlrec.model.tasks import task_specs

NAN = float("nan")
ALL_TASKS = task_specs(("ctr", "cvr", "relevance"))


def mixed_targets() -> Targets:
    """Two impression rows, then two judgement rows."""
    return Targets(
        click=torch.tensor([1.0, 0.0, NAN, NAN]),
        purchase=torch.tensor([1.0, 0.0, NAN, NAN]),
        relevance=torch.tensor([NAN, NAN, 3.0, 0.0]),
    )


def outputs(ctr: list[float], cvr: list[float], relevance: list[float]) -> TaskOutputs:
    def leaf(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, requires_grad=True)

    return TaskOutputs(leaf(ctr), leaf(cvr), leaf(relevance))


def test_each_term_ignores_the_other_row_kind() -> None:
    out = outputs([0.5, -0.5, 9.0, 9.0], [0.1, 0.2, -9.0, 9.0], [1.0, 1.0, 2.0, 1.0])
    losses = compute_losses(out, mixed_targets(), ALL_TASKS)
    expected_ctr = F.binary_cross_entropy_with_logits(out.ctr_logit[:2], torch.tensor([1.0, 0]))
    torch.testing.assert_close(losses["ctr"].value, expected_ctr)
    torch.testing.assert_close(losses["relevance"].value, torch.tensor((1.0 + 1.0) / 2))
    assert [losses[t].count for t in ("ctr", "ctcvr", "relevance")] == [2, 2, 2]
    sum(loss.value for loss in losses.values()).backward()
    assert (out.ctr_logit.grad[2:] == 0).all() and (out.relevance.grad[:2] == 0).all()


def test_batch_of_one_kind_gives_zero_not_nan() -> None:
    judgements = Targets(*(t[2:] for t in (mixed_targets().click, mixed_targets().purchase,
                                           mixed_targets().relevance)))  # fmt: skip
    losses = compute_losses(outputs([0.0, 0.0], [0.0, 0.0], [1.0, 2.0]), judgements, ALL_TASKS)
    assert losses["ctr"].value.item() == 0.0 and losses["ctcvr"].count == 0
    for mode in ("static", "uncertainty"):
        total = LossWeighting(("ctr", "ctcvr", "relevance"), mode, {})(losses)
        assert torch.isfinite(total) and total.item() > 0


def test_ctcvr_matches_plain_bce() -> None:
    targets = Targets(torch.ones(2), torch.tensor([1.0, 0.0]), torch.full((2,), NAN))
    out = outputs([0.3, -0.2], [0.1, 0.4], [0.0, 0.0])
    p = torch.sigmoid(out.ctr_logit) * torch.sigmoid(out.cvr_logit)
    torch.testing.assert_close(
        ctcvr_loss(out, targets).value, F.binary_cross_entropy(p, targets.purchase)
    )


def test_ctcvr_stays_finite_at_extreme_logits() -> None:
    # p_ctcvr rounds to 1 with no purchase, and to 0 (e^-120) with one: a naive BCE gives inf.
    targets = Targets(torch.ones(2), torch.tensor([0.0, 1.0]), torch.full((2,), NAN))
    out = outputs([60.0, -60.0], [60.0, -60.0], [0.0, 0.0])
    loss = ctcvr_loss(out, targets).value
    loss.backward()
    assert torch.isfinite(out.ctr_logit.grad).all() and torch.isfinite(out.cvr_logit.grad).all()
    assert 135.0 < 2 * loss.item() < 137.0  # -log(1 - e^-1e-7) ~ 16.1, plus -log(e^-120) = 120


def test_uncertainty_weights_receive_gradients() -> None:
    weighting = LossWeighting(("ctr", "relevance"), "uncertainty", {})
    out = outputs([0.5, -0.5, 0.0, 0.0], [0.0] * 4, [1.0, 1.0, 2.0, 2.0])
    losses = compute_losses(out, mixed_targets(), task_specs(("ctr", "relevance")))
    weighting(losses).backward()  # d/ds (exp(-s) L + s) = 1 - L at s = 0: non-zero for L != 1
    assert weighting.log_vars.grad is not None and torch.count_nonzero(weighting.log_vars.grad) == 2


def test_static_weights_scale_terms() -> None:
    out = outputs([0.5, -0.5, 0.0, 0.0], [0.0] * 4, [1.0, 1.0, 2.0, 1.0])
    losses = compute_losses(out, mixed_targets(), task_specs(("ctr", "relevance")))
    total = LossWeighting(("ctr", "relevance"), "static", {"ctr": 2.0, "relevance": 0.5})(losses)
    expected = 2.0 * losses["ctr"].value + 0.5 * losses["relevance"].value
    torch.testing.assert_close(total, expected)


def test_targets_from_frame_without_labels_are_nan() -> None:
    targets = Targets.from_frame(pd.DataFrame({"click": [1, 0]}))
    assert targets.click.tolist() == [1.0, 0.0] and torch.isnan(targets.relevance).all()


def test_single_task_cvr_learns_from_clicked_rows_only() -> None:
    targets = Targets(
        click=torch.tensor([1.0, 0.0, 1.0, NAN]),
        purchase=torch.tensor([1.0, 0.0, 0.0, NAN]),
        relevance=torch.full((4,), NAN),
    )
    out = outputs([0.0] * 4, [2.0, -5.0, -1.0, 7.0], [0.0] * 4)
    losses = compute_losses(out, targets, task_specs(("cvr",)))
    assert list(losses) == ["cvr"] and losses["cvr"].count == 2
    expected = F.binary_cross_entropy_with_logits(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0]))
    torch.testing.assert_close(losses["cvr"].value, expected)


def test_priors_and_constant_losses_give_the_label_entropy() -> None:
    targets = Targets(
        click=torch.tensor([1.0, 0.0, 0.0, 0.0, NAN]),
        purchase=torch.tensor([1.0, 0.0, 0.0, 0.0, NAN]),
        relevance=torch.tensor([NAN, NAN, NAN, NAN, 2.0]),
    )
    priors = targets.priors()
    assert priors == pytest.approx({"ctr": 0.25, "cvr": 1.0, "relevance": 2.0})
    losses = constant_losses(task_specs(("ctr", "relevance")), priors, targets)
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert losses == pytest.approx({"ctr": entropy, "relevance": 0.0}, abs=1e-6)
    no_clicks = Targets(torch.zeros(2), torch.zeros(2), torch.full((2,), NAN))
    assert set(no_clicks.priors()) == {"ctr"}  # no purchase rate without clicks, no grades
