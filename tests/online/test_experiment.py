"""The online test on the tiny pipeline's workspace: an identical challenger is not worse; a
deliberately worse one (trained on shuffled labels) is refused online, also when the offline gate
would let it through (no champion yet: the test is against a popularity ranker)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mtlrec.config import EvaluateConfig, Params, load_params
from mtlrec.evaluation import evaluate, promote
from mtlrec.online import experiment
from mtlrec.registry import Registry
from mtlrec.training.train import run as train

pytestmark = pytest.mark.slow
SESSIONS = 2000


def _params(root: Path) -> Params:
    return load_params(root / "params.yaml")


def _paths(root: Path, challenger: Path, registry: Path, out: Path) -> experiment.OnlinePaths:
    data = root / "data"
    return experiment.OnlinePaths(
        challenger=challenger,
        registry=registry,
        repo=root / "feature_repo",
        index=data / "index",
        cache=data / "cache",
        truth=data / "ground_truth",
        out=out,
        plots=out.with_suffix(".csv"),
    )


def _run(root: Path, paths: experiment.OnlinePaths, **gate: object) -> dict:
    params = _params(root)
    config = params.online_test.model_copy(update={"sessions": SESSIONS})
    gate_config = params.gate.model_copy(update=gate)
    return experiment.run(config, gate_config, params.serve, params.simulate, params.source, paths)


@pytest.fixture(scope="module")
def worse(pipeline_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A challenger of the same features and code that learned from shuffled labels."""
    root = tmp_path_factory.mktemp("worse")
    shutil.copytree(pipeline_run / "data" / "training", root / "data")
    for split in ("train", "valid"):
        frame = pd.read_parquet(root / "data" / f"{split}.parquet")
        labels = ["click", "purchase", "relevance"]
        frame[labels] = frame[labels].sample(frac=1.0, random_state=0).to_numpy()
        frame.to_parquet(root / "data" / f"{split}.parquet")
    params = _params(pipeline_run)
    cache = pipeline_run / "data" / "cache"
    train(params.model, params.train, root / "data", root / "model", cache, checkpoints=root / "c")
    metrics = root / "metrics.json"
    data, truth = pipeline_run / "data" / "training", pipeline_run / "data" / "ground_truth"
    evaluate.run(EvaluateConfig(), root / "model", data, truth, cache, metrics)
    return root


def test_an_identical_challenger_is_not_worse_and_reruns_are_identical(
    pipeline_run: Path, tmp_path: Path
) -> None:
    registry = pipeline_run / "models" / "registry"
    paths = _paths(
        pipeline_run, pipeline_run / "models" / "challenger", registry, tmp_path / "a.json"
    )
    report = _run(pipeline_run, paths)
    assert report["champion"] == "champion v1" and report["sessions"] == SESSIONS
    assert 0 < report["search_sessions"] < SESSIONS
    for metric, result in report["ab"].items():
        assert result["ci_low"] <= result["ci_high"], metric
        assert result["sessions"][0] + result["sessions"][1] > 0
    share = report["interleaving"]
    assert share["ci_low"] < 0.5 < share["ci_high"]  # the same ranker on both teams
    assert report["verdict"]["passed"] and "not significantly worse" in report["verdict"]["reason"]
    again = _paths(pipeline_run, paths.challenger, registry, tmp_path / "b.json")
    _run(pipeline_run, again)
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    table = pd.read_csv(tmp_path / "a.csv")
    assert {"purchases_per_1000", "interleaving_share"} <= set(table["metric"])


def test_a_worse_challenger_loses_the_interleaving_to_the_champion(
    pipeline_run: Path, worse: Path, tmp_path: Path
) -> None:
    registry = pipeline_run / "models" / "registry"
    report = _run(
        pipeline_run, _paths(pipeline_run, worse / "model", registry, tmp_path / "o.json")
    )
    assert report["interleaving"]["ci_high"] < 0.5, report["interleaving"]
    assert not report["verdict"]["passed"]
    assert "significantly worse" in report["verdict"]["reason"]


def test_the_online_test_refuses_what_the_offline_gate_would_promote(
    pipeline_run: Path, worse: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "registry"  # no champion: offline, the first model always passes
    paths = _paths(pipeline_run, worse / "model", empty, tmp_path / "online.json")
    report = _run(pipeline_run, paths)
    assert report["champion"].startswith("no champion yet: popularity ranker")
    assert not report["verdict"]["passed"], report["interleaving"]
    params = _params(pipeline_run)
    promote_paths = promote.PromotePaths(
        challenger=worse / "model",
        challenger_metrics=worse / "metrics.json",
        data=pipeline_run / "data" / "training",
        truth=pipeline_run / "data" / "ground_truth",
        cache=pipeline_run / "data" / "cache",
        registry=empty,
        dvc_lock=tmp_path / "dvc.lock",
        out=tmp_path / "gate.json",
        online=paths.out,
    )
    refused = promote.run(params.gate, params.evaluate, promote_paths)
    assert not refused.promoted and Registry(empty).versions() == []
    assert refused.reasons[0] == "no champion yet"  # the offline gate said yes
    assert any(reason.startswith("online: interleaving") for reason in refused.reasons)
    reported = params.gate.model_copy(update={"online_test": "report"})
    assert promote.run(reported, params.evaluate, promote_paths).promoted  # shown, not deciding
    gate_report = json.loads((tmp_path / "gate.json").read_text())
    assert any("online:" in reason for reason in gate_report["reasons"])


def test_the_online_test_ranks_as_the_service_does(pipeline_run: Path, tmp_path: Path) -> None:
    """`top_items` (what the online test reads) is `rank_many`'s order (what `POST /rank`
    answers), request for request, feed and search sessions alike."""
    from mtlrec import shop as shop_api
    from mtlrec.online.sessions import draw_sessions

    params = _params(pipeline_run)
    registry = pipeline_run / "models" / "registry"
    paths = _paths(pipeline_run, pipeline_run / "models" / "challenger", registry, tmp_path / "o")
    arms = experiment._arms(paths, params.serve)
    shop = shop_api.build_shop(params.simulate)
    sessions = draw_sessions(shop, 200, params.simulate.search_share, seed=3)
    requests = experiment.session_requests(sessions, 10, arms.challenger)
    assert {r.scenario for r in requests} == {"feed", "search"}
    ranked = arms.challenger.rank_many(requests)
    top = arms.challenger.top_items(requests)
    assert len(top) == len(ranked) == 200
    for items, ranking in zip(top, ranked, strict=True):
        assert items.tolist() == ranking.items["item_id"].tolist()
