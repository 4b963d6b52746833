"""The report stage: a run's metrics as a person reads them, in `reports/metrics.md`.

One row per task: the multi-task challenger beside the single-task baselines, the oracle (the
simulator's true probabilities, the best any model can do) and the champion scored on the same
test rows, then the gate's verdict. Below it, every metric in the same columns. The headline
rows are also written as a long table (`reports/comparison.csv`: metric, model, value) that
dvc.yaml's "Comparison" plot draws, one row of dots per task. The numbers
are read from the stages' metric files (`comparison.json`, `champion.json`, `gate.json`),
never recomputed, so this page and `dvc metrics show` cannot disagree.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlrec.evaluation.metrics import Metrics, fmt

# The metric a task is judged by in the one-row-per-task table (bench_quality's targets).
HEADLINE = {"ctr": "auc", "cvr": "auc", "ctcvr": "auc", "relevance": "auc_relevant"}
EVERY_METRIC = "## Every metric"  # the detail section's heading (`make run` prints above it)
COLUMNS = ("multi-task", "single-task", "oracle", "champion", "multi - single")
# The plot table's models: comparison.json's keys by the names the report's columns use.
MODELS = {"multi_task": "multi-task", "single_task": "single-task", "oracle": "oracle"}


@dataclass(frozen=True)
class ReportPaths:
    comparison: Path  # metrics/comparison.json (baselines)
    gate: Path  # metrics/gate.json (promote)
    champion: Path  # metrics/champion.json (promote; {} when there was no champion)
    out: Path  # reports/metrics.md
    plot: Path | None = None  # reports/comparison.csv (the Comparison plot's table)


def run(paths: ReportPaths) -> str:
    """Write the Markdown report; return its headline part (what the stage prints)."""
    comparison = json.loads(paths.comparison.read_text())
    gate = json.loads(paths.gate.read_text())
    champion: Metrics = json.loads(paths.champion.read_text()) if paths.champion.is_file() else {}
    headline = headline_table(comparison, champion)
    verdict = gate_line(gate)
    text = "\n".join(
        [
            "# Metrics of this run",
            "",
            "Test split. multi-task: the challenger; single-task: one model per task on the same"
            " data; oracle: the simulator's true probabilities (the ceiling); champion: the"
            " production model before this run, scored on the same rows.",
            "",
            headline,
            "",
            verdict,
            "",
            EVERY_METRIC,
            "",
            detail_table(comparison, champion),
            "",
        ]
    )
    paths.out.parent.mkdir(parents=True, exist_ok=True)
    paths.out.write_text(text)
    if paths.plot is not None:
        write_plot_table(comparison_rows(comparison, champion), paths.plot)
    return f"{headline}\n\n{verdict}"


def comparison_rows(comparison: dict[str, Any], champion: Metrics) -> list[dict[str, Any]]:
    """The headline table as (metric, model, value) rows; models without a value are left out
    (no champion before the first promotion, no single-task model for ctcvr)."""
    rows = []
    for task, name in HEADLINE.items():
        values = comparison.get(task, {}).get(name)
        if values is None:
            continue
        found = {label: values.get(key) for key, label in MODELS.items()}
        found["champion"] = champion.get(task, {}).get(name)
        rows += [
            {"metric": f"{task}.{name}", "model": model, "value": value}
            for model, value in found.items()
            if value is not None
        ]
    return rows


def write_plot_table(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["metric", "model", "value"])
        writer.writeheader()
        writer.writerows(rows)


def headline(report: Path) -> str | None:
    """The one-row-per-task table and the gate's line of a written report (None: no report)."""
    if not report.is_file():
        return None
    text = report.read_text().split(EVERY_METRIC)[0]
    return text[text.index("|") :].strip() if "|" in text else None


def headline_table(comparison: dict[str, Any], champion: Metrics) -> str:
    """One row per task: its headline metric in every column."""
    rows = [
        _row(task, name, comparison[task][name], champion)
        for task, name in HEADLINE.items()
        if name in comparison.get(task, {})
    ]
    return _markdown(rows)


def detail_table(comparison: dict[str, Any], champion: Metrics) -> str:
    """Every metric of every task, in the headline's columns."""
    rows = [
        _row(task, name, values, champion)
        for task, metrics in comparison.items()
        for name, values in metrics.items()
    ]
    return _markdown(rows)


def gate_line(gate: dict[str, Any]) -> str:
    before = gate.get("champion_before") or "none"
    if gate["promoted"]:
        verdict = f"**Promoted** as {gate.get('version')}"
    else:
        verdict = "**Not promoted**: production unchanged"
    return f"{verdict} (champion before: {before}). Reasons: {'; '.join(gate['reasons'])}."


def _row(task: str, name: str, values: dict[str, Any], champion: Metrics) -> list[str]:
    difference = values.get("multi_minus_single")
    cells = [
        fmt(values.get("multi_task")),
        fmt(values.get("single_task")),
        fmt(values.get("oracle")),
        fmt(champion.get(task, {}).get(name)),
        "-" if difference is None else f"{difference:+.4f}",
    ]
    return [task, name, *cells]


def _markdown(rows: list[list[str]]) -> str:
    """A Markdown table whose columns line up in a terminal too."""
    header = ["task", "metric", *COLUMNS]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    # Numbers right-aligned (`---:`), names left: the rule is as wide as its column.
    rule = "|" + "|".join("-" * (w + 1) + (":" if i >= 2 else "-") for i, w in enumerate(widths))
    return "\n".join([line(header), rule + "|", *map(line, rows)])
