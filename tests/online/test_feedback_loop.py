"""Two rounds of the feedback loop on the tiny shop, with the real tools: the production model
serves simulated shoppers and their impressions land as feedback batches (log), `dvc repro`
validates them and retrains (validate -> ... -> train), the online test plays the challenger
against the champion and the gate decides. The second round's model is trained on the first
round's logs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mtlrec.online.feedback import served_by
from mtlrec.registry import Registry
from tests.conftest import run_dvc, tool_env

pytestmark = pytest.mark.slow
DAYS = 4  # a round's days: past the 2 validation and 2 test days, so the next round trains on them


def _log(root: Path) -> list[str]:
    done = subprocess.run(
        ["mtlrec", "log-sessions", "--days", str(DAYS), "--sessions", "300"],
        cwd=root, env=tool_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()


def _round(root: Path) -> dict:
    production = Registry(root / "models" / "registry").production()
    _log(root)
    run_dvc(root, "repro")
    gate = json.loads((root / "metrics" / "gate.json").read_text())
    online = json.loads((root / "metrics" / "online_test.json").read_text())
    return {"served_by": production, "gate": gate, "online": online}


def test_two_rounds_serve_log_validate_retrain_online_test_gate(
    pipeline_run: Path, tmp_path: Path
) -> None:
    root = tmp_path / "loop"
    shutil.copytree(pipeline_run, root, symlinks=True)
    first = _round(root)
    feedback = sorted((root / "data" / "feedback" / "impressions").glob("*.parquet"))
    assert [f.stem for f in feedback] == [
        f"2026-01-{day:02d}_served-{first['served_by']}" for day in range(7, 7 + DAYS)
    ]
    assert {served_by(f) for f in feedback} == {first["served_by"]}
    validated = root / "data" / "validated" / "impressions"
    for batch in feedback:  # validated as they are: the same bytes, served_by kept
        assert (validated / batch.name).read_bytes() == batch.read_bytes()
    assert first["online"]["champion"] == f"champion {first['served_by']}"
    assert first["online"]["verdict"]["reason"] in " ".join(first["gate"]["reasons"])

    second = _round(root)
    assert len(list((root / "data" / "feedback" / "impressions").glob("*.parquet"))) == 2 * DAYS
    train = pd.read_parquet(root / "data" / "training" / "train.parquet", columns=["row_id"])
    logged = train["row_id"][train["row_id"].str.startswith("srv-")]
    first_round = {f"srv-2026010{day}" for day in range(7, 10)}  # the first round's days
    assert logged.str[:12].isin(first_round).any(), "round 2 did not train on round 1's logs"
    assert second["online"]["champion"] == f"champion {second['served_by']}"
    summary = pq.read_schema(feedback[0]).metadata
    assert summary[b"mtlrec.served_by"].decode() == first["served_by"]
