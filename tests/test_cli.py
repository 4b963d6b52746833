import subprocess
import sys
from pathlib import Path

import pytest

from mtlrec.cli import _stages, main

STAGES = list(_stages())


def test_help_lists_every_stage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    for stage in (
        "simulate",
        "validate",
        "featurize",
        "feast-apply",
        "materialize",
        "build-dataset",
        "train",
        "evaluate",
        "promote",
        "rollback",
    ):
        assert stage in shown


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_has_its_own_help(stage: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([stage, "--help"])
    assert done.value.code == 0
    assert f"usage: mtlrec {stage}" in capsys.readouterr().out


def test_bad_params_exit_1_with_the_key_named(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("simulate:\n  sizes: {}\n  seeed: 3\n")
    done = subprocess.run(
        [sys.executable, "-m", "mtlrec.cli", "--params", str(params), "simulate"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "simulate.seeed: Extra inputs are not permitted" in done.stderr
    assert "Traceback" not in done.stderr
