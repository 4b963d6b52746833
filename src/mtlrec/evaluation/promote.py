"""The promote stage: score the champion on the challenger's test set, gate, register.

The champion is re-evaluated on exactly the rows the challenger was evaluated on, so the
comparison is fair even when the data moved since the champion was trained. A champion whose
files are damaged is not compared at all: the stage fails and says how to repair it (roll back
to a healthy version, or `gate.force_promote` to replace it). Registering and moving the alias
is one idempotent step, so a retry after a crash finishes what the first try began.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mtlrec.config import EvaluateConfig, GateConfig
from mtlrec.errors import UserError
from mtlrec.evaluation.decision import Decision, decide
from mtlrec.evaluation.metrics import Metrics
from mtlrec.registry import Registry, RegistryError, data_hashes

RUN_ID_ENV = "MTLREC_RUN_ID"  # set by the Airflow DAG: the run that made the model


@dataclass(frozen=True)
class PromotePaths:
    challenger: Path
    challenger_metrics: Path
    data: Path
    truth: Path | None
    cache: Path
    registry: Path
    dvc_lock: Path
    out: Path
    online: Path | None = None  # the online test's report (metrics/online_test.json)
    champion_metrics: Path | None = None  # the champion's metrics on the same test rows


def run(gate: GateConfig, evaluation: EvaluateConfig, paths: PromotePaths) -> Decision:
    challenger: Metrics = json.loads(paths.challenger_metrics.read_text())
    registry = Registry(paths.registry)
    champion_version = registry.production()
    if champion_version is not None and registry.holding(paths.challenger) == champion_version:
        # A retry of the run that promoted this very model (killed before its report): judge
        # it against the champion it replaced, so the retry reports what the first try did.
        champion_version = registry.replaced_by(champion_version)
    champion, decision = _judge(gate, evaluation, paths, registry, champion_version, challenger)
    decision = _online(gate, decision, paths.online, champion_version)
    version = None
    if decision.promoted:
        reason = "; ".join(decision.reasons)
        version = registry.promote(paths.challenger, _metadata(challenger, paths), reason)
    decision = replace(decision, version=version, champion_before=champion_version)
    return _report(decision, champion, paths)


def _report(decision: Decision, champion: Metrics | None, paths: PromotePaths) -> Decision:
    """metrics/gate.json: the decision, and where the two sets of metrics it compared are
    (the champion's, scored on the challenger's test rows, written beside it; `{}` when there
    was none to score). The metrics are referred to, not copied: one place for each number."""
    files = {"challenger": str(paths.challenger_metrics), "champion": None}
    if paths.champion_metrics is not None:
        paths.champion_metrics.parent.mkdir(parents=True, exist_ok=True)
        scored = json.dumps(champion or {}, indent=2, sort_keys=True)
        paths.champion_metrics.write_text(scored + "\n")
        files["champion"] = str(paths.champion_metrics)
    report = {**asdict(decision), "metrics": files}
    paths.out.parent.mkdir(parents=True, exist_ok=True)
    paths.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return decision


def _judge(
    gate: GateConfig,
    evaluation: EvaluateConfig,
    paths: PromotePaths,
    registry: Registry,
    champion_version: str | None,
    challenger: Metrics,
) -> tuple[Metrics | None, Decision]:
    if champion_version is None:
        return None, decide(gate, challenger, None)
    problems = registry.problems(champion_version)
    if problems:
        return None, _broken_champion(gate, registry, champion_version, problems)
    # Here, not at the top: scoring imports torch and scikit-learn (~4 s of the stage on a
    # slow CPU), which a first run, with no champion to score, never needs.
    from mtlrec.evaluation.evaluate import evaluate_model

    try:
        champion = evaluate_model(
            evaluation, registry.path(champion_version), paths.data, paths.truth, paths.cache
        )
    except (KeyError, ValueError) as error:
        # A champion that cannot read today's features cannot be compared: stay safe.
        reason = f"champion {champion_version} cannot score this test set: {error}"
        promote = gate.force_promote
        return None, Decision(promote, [reason] + (["force_promote is set"] if promote else []))
    return champion, decide(gate, challenger, champion)


def _online(
    gate: GateConfig, decision: Decision, report_file: Path | None, champion: str | None
) -> Decision:
    """The online test's say: with `gate.online_test: required`, a challenger significantly
    worse than the champion online is not promoted, whatever its offline metrics."""
    if gate.online_test == "off" or report_file is None:  # None: a caller with no online test
        return decision
    if not report_file.is_file():
        if gate.online_test == "required":
            raise UserError(f"{report_file}: no online test report (run `mtlrec online-test`)")
        return decision
    report = json.loads(report_file.read_text())
    verdict = report["verdict"]
    expected = f"champion {champion}" if champion else "no champion yet: popularity ranker"
    passed, reason = verdict["passed"], f"online: {verdict['reason']}"
    if report.get("applicable") and report.get("champion") != expected:
        passed = False  # the champion moved since the test: its result is not this decision's
        reason = f"online test ran against {report.get('champion')}, production is {champion}"
    if gate.online_test == "report" or passed:
        return Decision(decision.promoted, [*decision.reasons, reason])
    if gate.force_promote:
        return Decision(True, [*decision.reasons, reason, "force_promote is set"])
    return Decision(False, [*decision.reasons, reason])


def _broken_champion(
    gate: GateConfig, registry: Registry, version: str, problems: list[str]
) -> Decision:
    """A damaged champion cannot be compared, and keeping it silently would block every later
    promotion: replace it only when forced, else fail and say what to do."""
    reason = f"champion {version} is broken: {'; '.join(problems)}"
    if gate.force_promote:
        return Decision(True, [reason, "force_promote is set"])
    healthy = [v for v in registry.healthy() if v != version]
    fix = f"`mtlrec rollback --to {healthy[-1]}`" if healthy else "no healthy version to roll to"
    raise RegistryError(f"{reason}. Repair: {fix}, or set gate.force_promote: true to replace it")


def _metadata(challenger: Metrics, paths: PromotePaths) -> dict:
    return {
        "metrics": challenger,
        "data_hashes": data_hashes(paths.dvc_lock),
        "run_id": os.environ.get(RUN_ID_ENV),
        "source": str(paths.challenger),
    }
