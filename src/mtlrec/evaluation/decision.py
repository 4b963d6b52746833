"""The champion/challenger decision: promote only a challenger that beats the champion.

The challenger must beat the champion's primary metric (by more than `min_improvement`) and no
watched metric may regress by more than `max_regression`. With no champion yet, the first
model is promoted. `force_promote` overrides a refusal and says so. `Decision` is the one
result of it: `decide` gives the verdict and its reasons, the promote stage adds the version it
registered, and the Airflow DAG reads it back from `metrics/gate.json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mtlrec.config import GateConfig
from mtlrec.evaluation.metrics import Metrics


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reasons: list[str] = field(default_factory=list)
    version: str | None = None  # the version registered and made production (when promoted)
    champion_before: str | None = None  # production when the decision was taken

    def __str__(self) -> str:
        verdict = f"promoted {self.version or ''}".strip() if self.promoted else "kept the champion"
        before = f"champion before: {self.champion_before or 'none'}; "
        return f"gate: {verdict} ({before}{'; '.join(self.reasons)})"


def metric(report: Metrics, name: str) -> float | None:
    task, _, key = name.partition(".")
    return report.get(task, {}).get(key)


def decide(config: GateConfig, challenger: Metrics, champion: Metrics | None) -> Decision:
    if champion is None:
        return Decision(True, ["no champion yet"])
    reasons = []
    passed = _beats_primary(config, challenger, champion, reasons)
    passed = _no_regression(config, challenger, champion, reasons) and passed
    if not passed and config.force_promote:
        return Decision(True, [*reasons, "force_promote is set"])
    return Decision(passed, reasons)


def _beats_primary(
    config: GateConfig, challenger: Metrics, champion: Metrics, reasons: list[str]
) -> bool:
    reported = [name for name in config.primary_metric if metric(challenger, name) is not None]
    if not reported:
        reasons.append(f"challenger reports none of {list(config.primary_metric)}")
        return False
    name = reported[0]
    new, old = metric(challenger, name), metric(champion, name)
    if old is None:
        reasons.append(f"champion has no {name}; challenger {name}={new:.4f}")
        return True
    better = new > old + config.min_improvement
    relation = "beats" if better else "does not beat"
    reasons.append(f"{name}: challenger {new:.4f} {relation} champion {old:.4f}")
    return better


def _no_regression(
    config: GateConfig, challenger: Metrics, champion: Metrics, reasons: list[str]
) -> bool:
    passed = True
    for name in config.watched:
        new, old = metric(challenger, name), metric(champion, name)
        if old is None:
            continue
        if new is None or new < old - config.max_regression:
            shown = "missing" if new is None else f"{new:.4f}"
            reasons.append(f"{name} regressed: {shown} < {old:.4f} - {config.max_regression}")
            passed = False
    return passed
