"""Typed task specs: what each head predicts, from which label, with which loss term."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mtlrec.config import TaskName

LossTerm = Literal["ctr", "ctcvr", "cvr", "relevance"]


@dataclass(frozen=True)
class TaskSpec:
    """One prediction head of the multi-task model."""

    name: TaskName
    label: str  # dataframe column holding the target of its loss term
    loss_term: LossTerm  # cvr is trained through the ESMM product ctr * cvr, term "ctcvr"
    outputs: tuple[str, ...]  # prediction columns this task adds


CTR = TaskSpec(name="ctr", label="click", loss_term="ctr", outputs=("p_ctr",))
CVR = TaskSpec(name="cvr", label="purchase", loss_term="ctcvr", outputs=("p_cvr", "p_ctcvr"))
# The single-task CVR model: purchase given click, fitted on the clicked rows only. Its training
# rows are a biased sample of the rows it scores (sample selection bias, which ESMM avoids).
CVR_ON_CLICKS = TaskSpec(name="cvr", label="purchase", loss_term="cvr", outputs=("p_cvr",))
RELEVANCE = TaskSpec(
    name="relevance", label="relevance", loss_term="relevance", outputs=("relevance",)
)
TASKS: dict[str, TaskSpec] = {task.name: task for task in (CTR, CVR, RELEVANCE)}
LABEL_COLUMNS: tuple[str, ...] = ("click", "purchase", "relevance")
RELEVANCE_MAX = 3.0


def task_specs(names: tuple[str, ...]) -> tuple[TaskSpec, ...]:
    """The specs of the configured task names, in the configured order; `cvr` alone is the
    single-task CVR model on clicked rows, `cvr` beside `ctr` is ESMM."""
    unknown = [name for name in names if name not in TASKS]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; known: {sorted(TASKS)}")
    if tuple(names) == ("cvr",):
        return (CVR_ON_CLICKS,)
    return tuple(TASKS[name] for name in names)
