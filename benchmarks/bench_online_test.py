"""How many sessions A/B and interleaving need to catch a worse challenger, measured.

A challenger known to be worse is trained on the workspace's own training set, cut to
`--fraction` (10%) of its training rows: the same features and code, less data. The champion is
the production model. Both rank a pool of `--pool` sessions of the shop's users and queries once
(the serving ranking function, the serving retrieval), and the shop's shopper model gives every
shown item its click and purchase probability. Then, for each number of sessions n, `--repeats`
experiments draw n sessions from the pool and fresh clicks and purchases:

- A/B: half the sessions see each arm; the challenger is caught when Welch's t-test finds it
  worse at 95% (two-sided p < 0.05 with a lower mean), on purchases and on clicks per session;
- team-draft interleaving: every session sees both; caught when the binomial test of the
  sessions preferring the challenger gives p < 0.05 with a share below one half.

The power of each at each n is the share of repetitions that caught it; the table ends with the
smallest n that reaches 80% power and the ratio A/B : interleaving.

    .venv/bin/python benchmarks/bench_online_test.py [--workspace .] [--fraction 0.1]
        [--pool 20000] [--repeats 200]

Run it after `make run` (a production model, the default data, a materialized store, the index).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mtlrec import shop as shop_api
from mtlrec.config import load_params
from mtlrec.features.store import open_store
from mtlrec.online.experiment import padded, ranked_lists, session_requests
from mtlrec.online.interleaving import CHALLENGER, CHAMPION, team_draft
from mtlrec.online.sessions import draw_sessions, probabilities
from mtlrec.registry import Registry
from mtlrec.serving.ranker import Ranker
from mtlrec.serving.retrieval import Retriever
from mtlrec.training.train import run as train

GRID = (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000)
POWER = 0.8


def worse_model(workspace: Path, fraction: float, out: Path) -> Path:
    """The production config trained on `fraction` of the training rows (valid unchanged)."""
    params = load_params(workspace / "params.yaml")
    data = out / "data"
    data.mkdir(parents=True)
    for name in ("valid.parquet", "test.parquet", "schema.json"):
        shutil.copy2(workspace / "data" / "training" / name, data / name)
    train_rows = pd.read_parquet(workspace / "data" / "training" / "train.parquet")
    train_rows.sample(frac=fraction, random_state=0).sort_index().to_parquet(
        data / "train.parquet", index=False
    )
    cache = workspace / "data" / "cache"
    train(params.model, params.train, data, out / "model", cache, checkpoints=out / "ckpt")
    return out / "model"


def shown_probabilities(workspace: Path, challenger: Path, pool: int, k: int, seed: int) -> dict:
    """p_click and p_purchase of each pool session's lists: champion, challenger, interleaved."""
    params = load_params(workspace / "params.yaml")
    shop = shop_api.build_shop(params.simulate)
    behaviour = shop_api.load_behaviour(workspace / "data" / "ground_truth")
    registry = Registry(workspace / "models" / "registry")
    store, retriever = (
        open_store(workspace / "feature_repo"),
        Retriever(workspace / "data" / "index"),
    )
    args = (store, params.serve, workspace / "data" / "cache", retriever)
    champion = Ranker.load(registry, registry.production(), *args)
    worse = Ranker.from_folder(challenger, "worse", *args)
    sessions = draw_sessions(shop, pool, params.simulate.search_share, seed)
    requests = session_requests(sessions, k, champion)
    lists = {
        "champion": ranked_lists(champion, requests),
        "challenger": ranked_lists(worse, requests),
    }
    interleaved = team_draft(lists["champion"], lists["challenger"], k, np.random.default_rng(seed))
    out = {}
    for name, shown in (
        ("champion", padded(lists["champion"], k)),
        ("challenger", padded(lists["challenger"], k)),
        ("interleaved", interleaved.shown),
    ):
        p_click, p_buy, _ = probabilities(shop, behaviour, sessions, shown)
        out[name] = (p_click, p_click * p_buy)
    out["team"] = interleaved.team
    return out


def power(probs: dict, n: int, repeats: int, rng: np.random.Generator) -> dict[str, float]:
    """Share of `repeats` experiments of n sessions that caught the worse challenger."""
    pool = len(probs["team"])
    caught = {"ab_purchases": 0, "ab_clicks": 0, "interleaving": 0}
    for _ in range(repeats):
        rows = rng.integers(0, pool, n)
        half = rng.random(n) < 0.5
        per_arm = {}
        for arm, take in (("champion", ~half), ("challenger", half)):
            p_click, p_buy = (p[rows[take]] for p in probs[arm])
            per_arm[arm] = {
                "clicks": (rng.random(p_click.shape) < p_click).sum(axis=1),
                "purchases": (rng.random(p_buy.shape) < p_buy).sum(axis=1),
            }
        for metric in ("purchases", "clicks"):
            a, b = per_arm["champion"][metric], per_arm["challenger"][metric]
            test = stats.ttest_ind(b, a, equal_var=False)
            caught[f"ab_{metric}"] += bool(test.pvalue < 0.05 and b.mean() < a.mean())
        p_click, _ = probs["interleaved"]
        clicks = rng.random((n, p_click.shape[1])) < p_click[rows]
        team = probs["team"][rows]
        wins = (clicks & (team == CHALLENGER)).sum(axis=1) - (clicks & (team == CHAMPION)).sum(
            axis=1
        )
        up, down = int((wins > 0).sum()), int((wins < 0).sum())
        if up + down:
            test = stats.binomtest(up, up + down, 0.5)
            caught["interleaving"] += bool(test.pvalue < 0.05 and up < down)
    return {name: count / repeats for name, count in caught.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("."))
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--pool", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    workspace = args.workspace.resolve()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        challenger = worse_model(workspace, args.fraction, Path(scratch))
        trained = time.perf_counter()
        probs = shown_probabilities(workspace, challenger, args.pool, args.k, args.seed)
    ranked = time.perf_counter()
    rng = np.random.default_rng(args.seed + 1)
    print(f"challenger: the production config on {args.fraction:.0%} of the training rows "
          f"(trained in {trained - started:.0f} s); {args.pool:,} sessions ranked by both in "
          f"{ranked - trained:.0f} s; {args.repeats} experiments per row")  # fmt: skip
    mean = {arm: (probs[arm][0].sum(axis=1).mean(), probs[arm][1].sum(axis=1).mean())
            for arm in ("champion", "challenger")}  # fmt: skip
    print(f"expected clicks / purchases per session: champion {mean['champion'][0]:.4f} / "
          f"{mean['champion'][1]:.4f}, challenger {mean['challenger'][0]:.4f} / "
          f"{mean['challenger'][1]:.4f}")  # fmt: skip
    header = f"{'sessions':>9} {'A/B purchases':>14} {'A/B clicks':>11} {'interleaving':>13}"
    print(header)
    print("-" * len(header))
    needed: dict[str, int | None] = {"ab_purchases": None, "ab_clicks": None, "interleaving": None}
    for n in GRID:
        result = power(probs, n, args.repeats, rng)
        print(f"{n:>9,} {result['ab_purchases']:>14.2f} {result['ab_clicks']:>11.2f} "
              f"{result['interleaving']:>13.2f}")  # fmt: skip
        for name, value in result.items():
            if needed[name] is None and value >= POWER:
                needed[name] = n
        if all(value is not None for value in needed.values()):
            break
    print(f"sessions for {POWER:.0%} power: " + ", ".join(
        f"{name} {value:,}" if value else f"{name} > {GRID[-1]:,}" for name, value in needed.items()
    ))  # fmt: skip
    if needed["interleaving"]:
        for name in ("ab_purchases", "ab_clicks"):
            if needed[name]:
                print(f"ratio {name} / interleaving: {needed[name] / needed['interleaving']:.0f}x")
            else:
                print(f"ratio {name} / interleaving: > {GRID[-1] / needed['interleaving']:.0f}x")


if __name__ == "__main__":
    main()
