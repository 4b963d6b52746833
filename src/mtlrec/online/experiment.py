"""The `online_test` stage: the challenger against the champion, online, before promotion.

Sessions of the shop's own users and queries (`sessions.draw_sessions`) get candidates from the
serving retrieval, and each arm ranks them with the serving ranking function in process
(`Ranker.top_items`: the order `POST /rank` answers). The shop's shoppers then play:

- A/B: each session is served by one arm (a fair coin); per arm, CTR@k, purchases and revenue
  per 1,000 sessions, NDCG@10 on the true relevance (search sessions); the challenger minus the
  champion with its 95% interval (Welch's t-test, scipy);
- team-draft interleaving on every session: the share of sessions whose purchases (or clicks:
  `online_test.credit`) prefer the challenger, with its interval (exact binomial test, Wilson
  interval, scipy).

With no champion yet, the challenger is tested against a popularity ranker (the feed's most
clicked items first), so the first model is checked against something too; so it is when the
champion is broken or cannot rank (trained on features the store no longer serves), and the
report says so (the gate then refuses unless forced: production itself was not tested). Seeds
are fixed: the same models and store give the same report. The gate reads `verdict` (see `judge`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mtlrec import shop as shop_api
from mtlrec.config import GateConfig, OnlineTestConfig, ServeConfig, SimulateConfig, SourceConfig
from mtlrec.errors import UserError
from mtlrec.online.interleaving import preferences, team_draft
from mtlrec.online.sessions import Sessions, draw_sessions, ndcg, play
from mtlrec.serving.ranker import ModelRefused, Ranker, Request
from mtlrec.serving.retrieval import Retriever

AB_METRICS = ("ctr_at_k", "purchases_per_1000", "revenue_per_1000", "ndcg_at_10")


@dataclass(frozen=True)
class OnlinePaths:
    challenger: Path
    registry: Path
    repo: Path
    index: Path
    cache: Path
    truth: Path
    out: Path
    plots: Path | None = None


class PopularityRanker:
    """The baseline arm: candidates ordered by their clicks of the last days (the index)."""

    version = "popularity"

    def __init__(self, retriever: Retriever) -> None:
        self.rank_of = {int(item): r for r, item in enumerate(retriever.popular)}

    def top_items(self, requests: list[Request]) -> list[np.ndarray]:
        last = len(self.rank_of)
        return [
            np.asarray(sorted(r.candidates, key=lambda i: self.rank_of.get(i, last))[: r.k])
            for r in requests
        ]


@dataclass(frozen=True)
class Arms:
    champion: Any  # Ranker or PopularityRanker
    challenger: Ranker
    champion_note: str


def run(
    config: OnlineTestConfig,
    gate: GateConfig,
    serve: ServeConfig,
    simulate: SimulateConfig,
    source: SourceConfig,
    paths: OnlinePaths,
) -> dict[str, Any]:
    """Run the test and write its report (and the plot's table); return the report."""
    if gate.online_test == "off" or source.kind != "simulate":
        why = (
            "gate.online_test is off"
            if gate.online_test == "off"
            else (f"source {source.kind!r} has no simulated shoppers to test on")
        )
        return _write({"applicable": False, "reason": why, "verdict": _pass(why)}, paths)
    shop = shop_api.build_shop(simulate)
    behaviour = shop_api.load_behaviour(paths.truth)
    if behaviour is None:
        raise UserError(f"{paths.truth}/behaviour.json is missing: rerun `mtlrec land`")
    arms = _arms(paths, serve)
    sessions = draw_sessions(shop, config.sessions, simulate.search_share, config.seed)
    report = measure(shop, behaviour, sessions, arms, config)
    report["verdict"] = judge(report, gate)
    return _write(report, paths)


def _arms(paths: OnlinePaths, serve: ServeConfig) -> Arms:
    from mtlrec.features.store import open_store
    from mtlrec.registry import Registry

    store = open_store(paths.repo)
    retriever = Retriever(paths.index)
    args = (store, serve, paths.cache, retriever)
    challenger = Ranker.from_folder(paths.challenger, "challenger", *args)
    registry = Registry(paths.registry)
    version = registry.production()
    if version is None:
        return Arms(PopularityRanker(retriever), challenger, "no champion yet: popularity ranker")
    problems = registry.problems(version)
    if problems:
        note = f"no usable champion: {version} is broken ({'; '.join(problems)})"
        return Arms(PopularityRanker(retriever), challenger, f"{note}: popularity ranker")
    try:
        champion = Ranker.load(registry, version, *args)
    except ModelRefused as error:  # e.g. trained on features the store no longer serves
        note = f"no usable champion: {error}"  # the gate then says production was not tested
        return Arms(PopularityRanker(retriever), challenger, f"{note}: popularity ranker")
    return Arms(champion, challenger, f"champion {version}")


def measure(
    shop: shop_api.Shop,
    behaviour: shop_api.Behaviour,
    sessions: Sessions,
    arms: Arms,
    config: OnlineTestConfig,
) -> dict[str, Any]:
    """Both arms rank the sessions; A/B and interleaving on them, with intervals."""
    assign_rng, ab_rng, coin_rng, click_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(4)
    )
    requests = session_requests(sessions, config.k, arms.challenger)
    champion = ranked_lists(arms.champion, requests)
    challenger = ranked_lists(arms.challenger, requests)
    to_challenger = assign_rng.random(len(sessions)) < 0.5
    shown = np.where(
        to_challenger[:, None], padded(challenger, config.k), padded(champion, config.k)
    )
    outcomes = play(shop, behaviour, sessions, shown, ab_rng)
    values = _session_metrics(outcomes, shop, sessions, shown, config.k)
    ab = {
        metric: _welch(values[metric][to_challenger], values[metric][~to_challenger], config)
        for metric in AB_METRICS
    }
    interleaved = team_draft(champion, challenger, config.k, coin_rng)
    played = play(shop, behaviour, sessions, interleaved.shown, click_rng)
    credited = played.purchases if config.credit == "purchases" else played.clicks
    return {
        "applicable": True,
        "sessions": len(sessions),
        "search_sessions": int((sessions.query >= 0).sum()),
        "k": config.k,
        "champion": arms.champion_note,
        "challenger": "models/challenger",
        "ab": ab,
        "interleaving": {
            "credit": config.credit,
            **_binomial(preferences(interleaved, credited), config),
        },
    }


def session_requests(sessions: Sessions, k: int, ranker: Ranker) -> list[Request]:
    """One request per session with the serving retrieval's candidates (both arms rank the
    same candidates: the test compares rankers, not retrieval)."""
    bare = [
        Request(int(u), str(s), q, None, k)
        for u, s, q in zip(sessions.user_id, sessions.scenario, sessions.query_text, strict=True)
    ]
    candidates, _ = ranker.candidates(bare)
    return [
        Request(r.user_id, r.scenario, r.query, tuple(int(i) for i in items), k)
        for r, items in zip(bare, candidates, strict=True)
    ]


def ranked_lists(arm: Any, requests: list[Request]) -> list[np.ndarray]:
    """Each request's ranked item ids from either arm (a `Ranker` or the popularity one)."""
    return list(arm.top_items(requests))


def padded(lists: list[np.ndarray], k: int) -> np.ndarray:
    out = np.full((len(lists), k), -1, dtype=np.int64)
    for row, items in enumerate(lists):
        out[row, : min(k, len(items))] = items[:k]
    return out


def _session_metrics(
    outcomes: Any, shop: shop_api.Shop, sessions: Sessions, shown: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    totals = outcomes.per_session()
    return {
        "ctr_at_k": totals["clicks"] / k,
        "purchases_per_1000": 1000.0 * totals["purchases"],  # a session's share of 1,000
        "revenue_per_1000": 1000.0 * totals["revenue"],
        "ndcg_at_10": ndcg(shop, sessions, shown, 10),
    }


def _welch(challenger: np.ndarray, champion: np.ndarray, config: OnlineTestConfig) -> dict:
    """Per-session means of each arm and the challenger's difference, Welch's 95% interval
    (the counts already per 1,000 sessions). NaN rows (feed sessions' NDCG) are left out."""
    challenger, champion = challenger[~np.isnan(challenger)], champion[~np.isnan(champion)]
    test = stats.ttest_ind(challenger, champion, equal_var=False)
    low, high = test.confidence_interval(config.confidence)
    return {
        "champion": float(champion.mean()),
        "challenger": float(challenger.mean()),
        "difference": float(challenger.mean() - champion.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": float(test.pvalue),
        "sessions": [int(len(champion)), int(len(challenger))],
    }


def _binomial(prefers: np.ndarray, config: OnlineTestConfig) -> dict:
    wins, losses = int((prefers > 0).sum()), int((prefers < 0).sum())
    decided = wins + losses
    if decided == 0:
        return {"challenger_wins": 0, "champion_wins": 0, "ties": int(len(prefers)),
                "share": None, "ci_low": None, "ci_high": None, "p_value": None}  # fmt: skip
    test = stats.binomtest(wins, decided, p=0.5)
    interval = test.proportion_ci(confidence_level=config.confidence, method="wilson")
    return {
        "challenger_wins": wins,
        "champion_wins": losses,
        "ties": int(len(prefers) - decided),
        "share": wins / decided,
        "ci_low": float(interval.low),
        "ci_high": float(interval.high),
        "p_value": float(test.pvalue),
    }


def judge(report: dict[str, Any], gate: GateConfig) -> dict[str, Any]:
    """Whether the challenger may be promoted on the online test: not significantly worse on
    `gate.online_metric` (the interval of the difference, or of the preference share above
    one half, not wholly below no difference)."""
    metric = gate.online_metric
    if metric == "interleaving":
        result = report["interleaving"]
        worse = result["ci_high"] is not None and result["ci_high"] < 0.5
        decided = result["challenger_wins"] + result["champion_wins"]
        shown = f"interleaving ({result['credit']}): no session preferred either ranker"
        if result["share"] is not None:
            low, high = result["ci_low"], result["ci_high"]
            shown = (
                f"interleaving ({result['credit']}): {result['share']:.3f} of {decided} "
                f"sessions with a preference prefer the challenger [{low:.3f}, {high:.3f}]"
            )
    else:
        result = report["ab"][metric]
        worse = result["ci_high"] < 0
        shown = (
            f"A/B {metric}: challenger - champion {result['difference']:+.4g} "
            f"[{result['ci_low']:+.4g}, {result['ci_high']:+.4g}]"
        )
    reason = f"{shown}: {'significantly worse' if worse else 'not significantly worse'}"
    return {"passed": not worse, "metric": metric, "mode": gate.online_test, "reason": reason}


def _pass(reason: str) -> dict[str, Any]:
    return {"passed": True, "metric": None, "mode": "n/a", "reason": reason}


def _write(report: dict[str, Any], paths: OnlinePaths) -> dict[str, Any]:
    paths.out.parent.mkdir(parents=True, exist_ok=True)
    paths.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    if paths.plots is not None:  # a stage output: written (empty) when no test ran
        rows = []
        if report.get("applicable"):
            rows = [
                {"metric": metric, "arm": arm, "value": value[arm]}
                for metric, value in report["ab"].items()
                for arm in ("champion", "challenger")
            ]
            share = report["interleaving"]["share"]
            if share is not None:
                rows += [{"metric": "interleaving_share", "arm": "challenger", "value": share}]
        paths.plots.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows, columns=["metric", "arm", "value"]).to_csv(paths.plots, index=False)
    return report
