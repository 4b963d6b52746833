"""Clicks and purchases: what the shop's users do with what they are shown.

Click and purchase share some causes and not others, so the two tasks are related but not the
same: a click follows category affinity, relevance and the position examined; a purchase follows
item quality and price (against the user's sensitivity) much more than the click does.

The two intercepts (`Behaviour`) are fitted once, on the simulated history, to typical shop
rates; any other traffic (a new ranker's lists shown to the same users) is played with the same
behaviour, not re-fitted, so a better ranking earns more clicks rather than the same rate.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mtlrec.shop.catalog import CATALOG
from mtlrec.shop.traffic import Traffic
from mtlrec.shop.world import Shop

# Targets that the intercepts are calibrated to: typical e-commerce rates.
# Rates of a search-led shop; high enough that a 2-day test split holds ~4,000 purchases, so a
# 0.01 difference in CVR AUC is above the sampling noise (about 0.02 with 200 purchases).
TARGET_CTR = 0.10
TARGET_PURCHASE_PER_CLICK = 0.20
BEHAVIOUR_FILE = "behaviour.json"


@dataclass(frozen=True)
class Behaviour:
    """The intercepts of the click and the purchase logits (fitted by `calibrate`)."""

    click_intercept: float
    buy_intercept: float


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _calibrate(logit: np.ndarray, weight: np.ndarray, target: float) -> float:
    """The intercept b with sum(weight * sigmoid(b + logit)) / sum(weight) == target (bisection)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        rate = np.sum(weight * sigmoid(mid + logit)) / np.sum(weight)
        low, high = (mid, high) if rate < target else (low, mid)
    return (low + high) / 2


def _logits(traffic: Traffic, shop: Shop) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(click logit, purchase logit, examination probability, true relevance) of every
    impression, before the intercepts."""
    users, items, relevance = shop.users, shop.items, shop.relevance
    u, i, search = traffic.user, traffic.item, traffic.query >= 0
    affinity = np.log(users.preference[u, items.category[i]] * len(CATALOG))
    price = items.relative_price[i] * users.price_sensitivity[u]
    true_relevance = np.where(search, relevance[np.maximum(traffic.query, 0), i], np.nan)
    fit = np.where(search, true_relevance - 1.5, 0.0)
    click_logit = (
        0.9 * affinity
        + 0.5 * items.quality[i]  # shared with the purchase: clicks teach quality to cvr
        - 0.35 * price
        + 0.9 * fit
        + 0.3 * search
        + users.click_bias[u]
    )
    # Examination: a user sees position p with probability 1 / log2(p + 1) (the DCG discount).
    examined = 1.0 / np.log2(traffic.position + 1.0)
    # A purchase cares more about quality and price, less about taste, not about position.
    buy_logit = (
        1.1 * items.quality[i]
        - 0.25 * items.relative_price[i]
        - 1.0 * price
        + 0.3 * affinity
        + 0.5 * fit
        + users.buy_bias[u]
    )
    return click_logit, buy_logit, examined, true_relevance


def calibrate(traffic: Traffic, shop: Shop) -> Behaviour:
    """The intercepts that give `traffic` the target click rate and purchases per click."""
    click_logit, buy_logit, examined, _ = _logits(traffic, shop)
    click_intercept = _calibrate(click_logit, examined, TARGET_CTR / examined.mean())
    p_click = examined * sigmoid(click_logit + click_intercept)
    return Behaviour(click_intercept, _calibrate(buy_logit, p_click, TARGET_PURCHASE_PER_CLICK))


def outcome_probabilities(
    traffic: Traffic, shop: Shop, behaviour: Behaviour
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_click, p_purchase_given_click, true_relevance) of every impression."""
    click_logit, buy_logit, examined, true_relevance = _logits(traffic, shop)
    p_click = examined * sigmoid(click_logit + behaviour.click_intercept)
    return p_click, sigmoid(buy_logit + behaviour.buy_intercept), true_relevance


def draw_outcomes(
    rng: np.random.Generator, traffic: Traffic, shop: Shop, behaviour: Behaviour
) -> dict[str, np.ndarray]:
    """Clicks and purchases drawn from their probabilities, with the truth beside them."""
    p_click, p_buy, true_relevance = outcome_probabilities(traffic, shop, behaviour)
    draws = rng.random((2, len(p_click)))
    click = (draws[0] < p_click).astype(np.int64)
    return {
        "click": click,
        "purchase": click * (draws[1] < p_buy),  # a purchase needs a click
        "p_click": p_click,
        "p_purchase_given_click": p_buy,
        "true_relevance": true_relevance,
    }


def save_behaviour(behaviour: Behaviour, truth: Path) -> Path:
    """Beside the ground truth: an online test plays new traffic with the same behaviour."""
    file = Path(truth) / BEHAVIOUR_FILE
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(asdict(behaviour), indent=2) + "\n")  # floats round-trip exactly
    return file


def load_behaviour(truth: Path) -> Behaviour | None:
    file = Path(truth) / BEHAVIOUR_FILE
    if not file.is_file():
        return None
    raw = json.loads(file.read_text())
    return Behaviour(float(raw["click_intercept"]), float(raw["buy_intercept"]))
