"""Rater judgements: which items raters see for a query, and the grades they give."""

from __future__ import annotations

import numpy as np

from mtlrec.config import SimulationSize
from mtlrec.shop.catalog import GROUP_OF
from mtlrec.shop.world import Shop

N_RATERS = 3


def _sample(
    rng: np.random.Generator, candidates: np.ndarray, weights: np.ndarray, k: int
) -> np.ndarray:
    k = min(k, len(candidates))
    if k == 0:
        return candidates[:0]
    return rng.choice(candidates, size=k, replace=False, p=weights / weights.sum())


def _judged_items(
    rng: np.random.Generator, scores: np.ndarray, same: np.ndarray, related: np.ndarray, k: int
) -> np.ndarray:
    """Which items a rater sees for one query: the ranker's best matches, hard negatives from the
    same category (wrong brand, color, ...), and a few from other categories."""
    on = np.flatnonzero(same)
    noisy = scores[on] + rng.normal(0.0, 0.3, len(on))
    top = on[np.argsort(-noisy, kind="stable")][: int(np.ceil(0.4 * k))]
    rest = np.setdiff1d(on, top)
    hard = _sample(rng, rest, 3.2 - scores[rest], int(np.ceil(0.35 * k)))
    off = np.flatnonzero(~same)
    off = _sample(rng, off, np.where(related[off], 3.0, 1.0), k - len(top) - len(hard))
    return np.concatenate([top, hard, off])


def _rater_grades(rng: np.random.Generator, true_relevance: np.ndarray) -> np.ndarray:
    # Each rater grades an integer 0..3 around the truth; the label is their average.
    noisy = true_relevance[:, None] + rng.normal(0.0, 0.45, (len(true_relevance), N_RATERS))
    return np.clip(np.round(noisy), 0, 3).mean(axis=1)


def judgment_days(n_days: int) -> list[int]:
    # Two rating rounds (mid-period and the last day), one when the period is a single day.
    return sorted({(n_days - 1) // 2, n_days - 1})


def make_judgments(
    rng: np.random.Generator, shop: Shop, size: SimulationSize
) -> dict[str, np.ndarray]:
    """Judged (query, item) pairs: columns query, item, true, relevance, round (0 or 1)."""
    queries, items, relevance = shop.queries, shop.items, shop.relevance
    n = min(size.n_judged_queries, len(queries.text))
    # Raters see head and tail queries alike: sample by the square root of popularity.
    weights = np.sqrt(queries.popularity)
    chosen = rng.choice(len(queries.text), size=n, replace=False, p=weights / weights.sum())
    groups = GROUP_OF[items.category]
    pairs = []
    for q in chosen:
        same = items.category == queries.category[q]
        related = (groups == GROUP_OF[queries.category[q]]) & ~same
        picked = _judged_items(rng, relevance[q], same, related, size.judgments_per_query)
        pairs.append(np.stack([np.full(len(picked), q), picked], axis=1))
    query, item = np.concatenate(pairs).T
    true = relevance[query, item]
    # The first queries go to the first rating round, the rest to the second.
    n_rounds = len(judgment_days(size.n_days))
    rounds = (np.repeat(np.arange(n), [len(p) for p in pairs]) * n_rounds) // n
    return {
        "query": query,
        "item": item,
        "true": true,
        "relevance": _rater_grades(rng, true),
        "round": rounds,
    }
