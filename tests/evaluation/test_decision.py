from mtlrec.config import GateConfig
from mtlrec.evaluation.decision import decide


def _metrics(ctcvr: float, ctr: float = 0.7, ndcg: float = 0.8) -> dict:
    return {"ctcvr": {"auc": ctcvr}, "ctr": {"auc": ctr}, "relevance": {"ndcg@10": ndcg}}


def test_first_model_is_promoted() -> None:
    assert decide(GateConfig(), _metrics(0.7), None).promoted


def test_better_primary_without_regression_is_promoted() -> None:
    decision = decide(GateConfig(), _metrics(0.75), _metrics(0.70))
    assert decision.promoted
    assert "ctcvr.auc: challenger 0.7500 beats champion 0.7000" in decision.reasons


def test_worse_challenger_is_refused() -> None:
    decision = decide(GateConfig(), _metrics(0.65), _metrics(0.70))
    assert not decision.promoted
    assert "does not beat" in decision.reasons[0]


def test_regression_on_another_task_blocks_promotion() -> None:
    decision = decide(GateConfig(max_regression=0.01), _metrics(0.8, ctr=0.6), _metrics(0.7))
    assert not decision.promoted
    assert any("ctr.auc regressed" in reason for reason in decision.reasons)


def test_force_promote_overrides_and_says_so() -> None:
    decision = decide(GateConfig(force_promote=True), _metrics(0.6), _metrics(0.7))
    assert decision.promoted and decision.reasons[-1] == "force_promote is set"


def test_primary_metric_falls_back_to_the_first_one_reported() -> None:
    relevance_only = {"relevance": {"ndcg@10": 0.9}}
    decision = decide(GateConfig(), relevance_only, {"relevance": {"ndcg@10": 0.8}})
    assert decision.promoted
    assert decision.reasons[0].startswith("relevance.ndcg@10: challenger 0.9000 beats")
    refused = decide(GateConfig(), {"other": {"x": 1.0}}, relevance_only)
    assert not refused.promoted and "reports none of" in refused.reasons[0]
