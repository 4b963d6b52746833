"""How close to the oracle can any model get on the default shop? A reference for the quality table.

Simulates the shop of `params.yaml` in memory and fits logistic regressions that know the
simulator's structure: one-hot demographics x category (taste), brand and title words (quality),
price relative to its category x demographics (price sensitivity), position, scenario and the
TRUE query-item relevance (a perfect text model). With `--entities` it adds per-user, per-item
and per-user x category columns for what no attribute explains. Trained on the training days,
scored on the test days, the same time split as `build-dataset`. For relevance (all judged
pairs), the structural score is the simulator's relevance without each pair's own random part,
which no model can learn for a query it has not seen. The gap between these and the oracle is
what the data allows no model to close; the rest of the multi-task model's gap is its own.

    .venv/bin/python benchmarks/bench_ceiling.py [--params params.yaml] [--entities] [--c 0.1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mtlrec import shop as sim
from mtlrec.config import SimulationSize, load_params


def _one_hot(index: np.ndarray, size: int, values: np.ndarray | None = None) -> sp.csr_matrix:
    rows = np.arange(len(index))
    data = np.ones(len(index)) if values is None else values
    return sp.csr_matrix((data, (rows, index)), shape=(len(index), size))


def design(shop: sim.Shop, traffic: sim.Traffic, entities: bool) -> sp.csr_matrix:
    """(N, features) the structural design matrix of every impression."""
    users, items = shop.users, shop.items
    u, i = traffic.user, traffic.item
    c, n_c = items.category[i], len(sim.CATALOG)
    gender = np.searchsorted(["F", "M", "U"], users.gender)[u]
    age, tier = users.age_bucket[u], users.city_tier[u]
    search = traffic.query >= 0
    relevance = np.where(search, shop.relevance[np.maximum(traffic.query, 0), i], 0.0)
    price = items.relative_price[i]
    n_words = len(sim.MODIFIERS)
    blocks = [
        _one_hot(age * n_c + c, 7 * n_c),
        _one_hot(gender * n_c + c, 3 * n_c),
        _one_hot(tier * n_c + c, 6 * n_c),
        _one_hot(age * 6 + tier, 42, price),
        _one_hot(items.brand[i] + 1, len(sim.BRANDS) + 1),
        _one_hot(items.modifiers[i, 0], n_words),
        _one_hot(items.modifiers[i, 1], n_words),
        _one_hot(np.minimum(traffic.position, sim.MAX_LIST_LENGTH) - 1, sim.MAX_LIST_LENGTH),
        sp.csr_matrix(np.stack([search, relevance, price], axis=1).astype(float)),
    ]
    if entities:
        n_u, n_i = len(users.ids), len(items.ids)
        blocks += [_one_hot(u * n_c + c, n_u * n_c), _one_hot(u, n_u), _one_hot(i, n_i)]
    return sp.hstack(blocks).tocsr()


class _NoNoise:
    """Stands in for a generator where only `normal` is drawn: every draw is its mean."""

    def normal(self, loc: float, scale: float, shape: tuple[int, ...]) -> np.ndarray:
        return np.full(shape, loc)


def relevance_rows(
    rng: np.random.Generator, shop: sim.Shop, size: SimulationSize
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(relevant by the raters, the relevance of the true structure without the pair's own
    part, the true relevance) of every judged pair. Judgements are split by query, so no model
    can learn a test pair's own part: the structure is the best a text model can do."""
    judged = sim.make_judgments(rng, shop, size)
    structure = sim.relevance(_NoNoise(), shop.queries, shop.items)  # type: ignore[arg-type]
    labels = (judged["relevance"] >= 2).astype(int)
    return labels, structure[judged["query"], judged["item"]], judged["true"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--entities", action="store_true")
    parser.add_argument("--c", type=float, default=0.1, help="inverse L2 strength")
    args = parser.parse_args()
    params = load_params(args.params)
    started = time.perf_counter()
    config, split = params.simulate, params.dataset
    size, rng = config.active, sim.streams(config.seed)
    shop = sim.build_shop(config)  # draws from streams of its own: `rng`'s are left as they were
    days = [
        sim.simulate_day(rng["traffic"], shop, d, size.impressions_per_day, config.search_share, 0)
        for d in range(size.n_days)
    ]
    traffic = sim.concat_traffic(days)
    outcome = sim.draw_outcomes(rng["outcomes"], traffic, shop, sim.calibrate(traffic, shop))
    x = design(shop, traffic, args.entities)
    train = traffic.day < size.n_days - split.valid_days - split.test_days
    test = traffic.day >= size.n_days - split.test_days
    click, purchase = outcome["click"], outcome["purchase"]
    ctr = LogisticRegression(C=args.c, max_iter=300).fit(x[train], click[train])
    clicked = train & (click == 1)
    cvr = LogisticRegression(C=args.c, max_iter=300).fit(x[clicked], purchase[clicked])
    p_ctr, p_cvr = ctr.predict_proba(x[test])[:, 1], cvr.predict_proba(x[test])[:, 1]
    on_click = click[test] == 1
    truth_click, truth_buy = outcome["p_click"][test], outcome["p_purchase_given_click"][test]
    rows = {
        "ctr.auc": (click[test], p_ctr, truth_click),
        "cvr.auc": (purchase[test][on_click], p_cvr[on_click], truth_buy[on_click]),
        "ctcvr.auc": (purchase[test], p_ctr * p_cvr, truth_click * truth_buy),
    }
    rows["relevance.auc_relevant"] = relevance_rows(rng["judgments"], shop, size)
    print(f"{'metric':<22} {'structural':>10} {'oracle':>8} {'gap':>7}  entities: {args.entities}")
    for name, (labels, model, oracle) in rows.items():
        fitted, best = roc_auc_score(labels, model), roc_auc_score(labels, oracle)
        print(f"{name:<22} {fitted:>10.4f} {best:>8.4f} {best - fitted:>7.4f}")
    print(f"{int(test.sum()):,} test impressions, {int(purchase[test].sum()):,} purchases; "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
