"""reports/metrics.md: one row per task, every number read from the metric files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mtlrec.evaluation.baselines import compare
from mtlrec.evaluation.report import EVERY_METRIC, ReportPaths, run

MULTI = {
    "ctr": {"auc": 0.7769, "oracle_auc": 0.7809, "logloss": 0.30, "rows": 10.0},
    "cvr": {"auc": 0.7076, "oracle_auc": 0.7155},
    "relevance": {"auc_relevant": 0.9701, "oracle_auc_relevant": 0.9739, "ndcg@10": 0.91},
}
SINGLE = {
    "ctr": {"auc": 0.7758, "logloss": 0.31},
    "cvr": {"auc": 0.7030},
    "relevance": {"auc_relevant": 0.9679, "ndcg@10": 0.90},
}


def write(tmp_path: Path, champion: dict | None, gate: dict) -> ReportPaths:
    paths = ReportPaths(
        comparison=tmp_path / "comparison.json",
        gate=tmp_path / "gate.json",
        champion=tmp_path / "champion.json",
        out=tmp_path / "reports" / "metrics.md",
    )
    paths.comparison.write_text(json.dumps(compare(MULTI, SINGLE)))
    paths.gate.write_text(json.dumps(gate))
    if champion is not None:
        paths.champion.write_text(json.dumps(champion))
    return paths


def rows(table: str) -> dict[tuple[str, str], list[str]]:
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
    return {
        (row[0], row[1]): row[2:]
        for row in cells
        if len(row) == 7 and row[0] != "task" and not row[0].startswith("-")
    }


def test_one_row_per_task_with_multi_single_oracle_and_champion(tmp_path: Path) -> None:
    gate = {"promoted": True, "version": "v2", "champion_before": "v1", "reasons": ["beats v1"]}
    paths = write(tmp_path, {"ctr": {"auc": 0.7700}}, gate)
    printed = run(paths)
    headline = rows(printed)
    assert list(headline) == [("ctr", "auc"), ("cvr", "auc"), ("relevance", "auc_relevant")]
    assert headline[("ctr", "auc")] == ["0.7769", "0.7758", "0.7809", "0.7700", "+0.0011"]
    assert headline[("cvr", "auc")][3] == "-"  # the champion did not report it
    assert "**Promoted** as v2 (champion before: v1). Reasons: beats v1." in printed
    text = paths.out.read_text()
    assert text.startswith("# Metrics of this run") and printed in text
    detail = rows(text.split(EVERY_METRIC)[1])
    assert detail[("relevance", "ndcg@10")] == ["0.9100", "0.9000", "-", "-", "+0.0100"]
    assert ("ctr", "rows") not in detail and ("ctr", "oracle_auc") not in detail


def test_no_champion_and_a_refusal_are_said(tmp_path: Path) -> None:
    gate = {"promoted": False, "version": None, "champion_before": None, "reasons": ["worse"]}
    printed = run(write(tmp_path, None, gate))
    assert all(cells[3] == "-" for cells in rows(printed).values())
    assert "**Not promoted**: production unchanged (champion before: none)" in printed


def test_the_table_is_markdown_whose_columns_line_up(tmp_path: Path) -> None:
    gate = {"promoted": True, "version": "v1", "champion_before": None, "reasons": ["first"]}
    table = run(write(tmp_path, {}, gate)).split("\n\n")[0].splitlines()
    assert len({len(line) for line in table}) == 1  # aligned in a terminal
    assert table[1].startswith("|---") and table[1].endswith(":|")  # numbers right-aligned


def test_comparison_plot_table_has_a_row_per_task_and_model(tmp_path: Path) -> None:
    gate = {"promoted": False, "champion_before": "v1", "reasons": ["no gain"]}
    paths = write(tmp_path, {"ctr": {"auc": 0.7700}}, gate)
    paths = ReportPaths(paths.comparison, paths.gate, paths.champion, paths.out, tmp_path / "c.csv")
    run(paths)
    table = pd.read_csv(paths.plot)
    assert list(table.columns) == ["metric", "model", "value"]
    values = {(row.metric, row.model): row.value for row in table.itertuples()}
    assert values == {
        ("ctr.auc", "multi-task"): 0.7769,
        ("ctr.auc", "single-task"): 0.7758,
        ("ctr.auc", "oracle"): 0.7809,
        ("ctr.auc", "champion"): 0.7700,
        ("cvr.auc", "multi-task"): 0.7076,
        ("cvr.auc", "single-task"): 0.7030,
        ("cvr.auc", "oracle"): 0.7155,
        ("relevance.auc_relevant", "multi-task"): 0.9701,
        ("relevance.auc_relevant", "single-task"): 0.9679,
        ("relevance.auc_relevant", "oracle"): 0.9739,
    }
