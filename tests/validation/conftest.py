"""Workspaces for the gate: the repo's GX suites beside a private copy of the tiny landing zone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mtlrec.config import ValidateConfig
from mtlrec.validation import gate

REPO = Path(__file__).resolve().parents[2]


def make_workspace(root: Path, tiny_shop: Path, impression_days: int | None = None) -> Path:
    """gx/ (suites, no past results) and landing/; only the first `impression_days` days of
    impressions and no judgments when given (a smaller, faster landing zone)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "gx", root / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    shutil.copytree(tiny_shop / "data" / "landing", root / "landing")
    if impression_days is not None:
        for extra in sorted((root / "landing" / "impressions").glob("*.parquet"))[impression_days:]:
            extra.unlink()
        shutil.rmtree(root / "landing" / "judgments")
    return root


@pytest.fixture()
def workspace(tmp_path: Path, tiny_shop: Path) -> Path:
    return make_workspace(tmp_path, tiny_shop)


@pytest.fixture()
def small_workspace(tmp_path: Path, tiny_shop: Path) -> Path:
    """users, items and three days of impressions."""
    return make_workspace(tmp_path, tiny_shop, impression_days=3)


def run_gate(root: Path, config: ValidateConfig | None = None) -> gate.ValidationReport:
    landing, validated, quarantine = root / "landing", root / "validated", root / "quarantine"
    return gate.run(config or ValidateConfig(), landing, validated, quarantine, root)


def failing_run(root: Path, config: ValidateConfig | None = None) -> str:
    with pytest.raises(gate.ValidationFailed) as failure:
        run_gate(root, config)
    return str(failure.value)


def parquet_files(folder: Path) -> set[str]:
    """`<table>/<file>` of every parquet batch under a landing or validated folder."""
    return {f"{p.parent.name}/{p.name}" for p in folder.glob("*/*.parquet")}


def batch_lines(message: str, table: str, batch_id: str) -> list[str]:
    """The header and cause lines of one batch in a ValidationFailed message."""
    lines = message.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {table}/{batch_id} -> "))
    end = next(
        (i for i in range(start + 1, len(lines)) if not lines[i].startswith("    - ")), len(lines)
    )
    return lines[start:end]


def assert_held(root: Path, message: str, table: str, batch_id: str, *causes: str) -> dict:
    """The message names each cause under this batch, and the batch sits in quarantine (the
    original bytes beside result.json), not in validated; returns result.json."""
    section = "\n".join(batch_lines(message, table, batch_id))
    for cause in causes:
        assert cause in section, f"{cause!r} not in:\n{section}"
    source = root / "landing" / table / f"{batch_id}.parquet"
    held = root / "quarantine" / table / batch_id
    assert (held / source.name).read_bytes() == source.read_bytes()
    result = json.loads((held / "result.json").read_text())
    assert result["status"] == "quarantined" and result["failures"]
    assert not (root / "validated" / table / source.name).exists()
    return result


def redated(landing: Path, source_day: str, day: str) -> pd.DataFrame:
    """A day of impressions moved to another day: timestamps shifted and ids renamed, so that
    it is a valid batch of its own for that day."""
    frame = pd.read_parquet(landing / "impressions" / f"{source_day}.parquet")
    frame["event_timestamp"] += pd.Timestamp(day) - pd.Timestamp(source_day)
    stamp, new_stamp = source_day.replace("-", ""), day.replace("-", "")
    frame["impression_id"] = frame["impression_id"].str.replace(stamp, new_stamp)
    return frame
