"""Single-task baselines: trained one task each on the same data, scored like the challenger."""

import json
from pathlib import Path

import pandas as pd
import pytest

from mtlrec.config import BaselinesConfig, EvaluateConfig
from mtlrec.evaluation import baselines, evaluate
from mtlrec.evaluation.baselines import BaselinePaths, compare, comparison_table
from mtlrec.model.predict import load
from mtlrec.training import jobs
from tests.evaluation.test_evaluate import MODEL, TRAIN, workspace  # noqa: F401 (fixture)


def test_compare_sets_multi_single_and_oracle_side_by_side() -> None:
    multi = {"ctr": {"auc": 0.70, "oracle_auc": 0.80, "rows": 10.0}, "cvr": {"auc": 0.66}}
    single = {"ctr": {"auc": 0.68}}
    comparison = compare(multi, single)
    assert comparison["ctr"] == {
        "auc": {"multi_task": 0.70, "single_task": 0.68, "oracle": 0.80,
                "multi_minus_single": pytest.approx(0.02)},
    }  # fmt: skip
    assert comparison["cvr"]["auc"]["single_task"] is None
    assert comparison["cvr"]["auc"]["multi_minus_single"] is None
    lines = comparison_table(comparison).splitlines()
    assert lines[0].split() == ["task", "metric", "multi", "single", "oracle", "m", "-", "s"]
    assert lines[2].split() == ["ctr", "auc", "0.7000", "0.6800", "0.8000", "0.0200"]


def test_baselines_stage_end_to_end(workspace: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    w = workspace
    challenger = tmp_path / "challenger.json"
    evaluate.run(EvaluateConfig(), w["model"], w["data"], w["truth"], w["cache"], challenger)
    paths = BaselinePaths(
        data=w["data"], truth=w["truth"], cache=w["cache"], models=tmp_path / "models",
        challenger_metrics=challenger, out=tmp_path / "baselines.json",
        comparison=tmp_path / "comparison.json",
    )  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"no baseline model for \['ctr', 'cvr', 'rel"):
        baselines.run(EvaluateConfig(), BaselinesConfig(), paths)  # the train stage trains them
    work = jobs.baseline_jobs(("ctr", "cvr", "relevance"), MODEL, paths.models)
    jobs.train_all(work, TRAIN, w["data"], w["cache"], workers=1)
    outcome = baselines.run(EvaluateConfig(), BaselinesConfig(), paths)
    assert sorted(p.name for p in paths.models.iterdir()) == ["ctr", "cvr", "relevance"]
    assert [load(paths.models / task).outputs for task in ("ctr", "cvr", "relevance")] == [
        ["p_ctr"], ["p_cvr"], ["relevance"],
    ]  # fmt: skip
    report = json.loads(paths.out.read_text())
    assert report == outcome.metrics and set(report) == {"ctr", "cvr", "ctcvr", "relevance"}
    comparison = json.loads(paths.comparison.read_text())
    row = comparison["ctcvr"]["auc"]
    assert row["single_task"] == report["ctcvr"]["auc"]
    assert row["multi_task"] == json.loads(challenger.read_text())["ctcvr"]["auc"]
    assert row["oracle"] is not None and "ctcvr" in str(outcome)
    # The baselines' ctcvr is the product of the ctr and cvr baselines' probabilities.
    scored = baselines.score_baselines(("ctr", "cvr"), paths)
    pd.testing.assert_series_equal(
        scored["p_ctcvr"], scored["p_ctr"] * scored["p_cvr"], check_names=False
    )
