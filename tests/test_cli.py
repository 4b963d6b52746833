import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mtlrec import workspace
from mtlrec.cli import main
from mtlrec.data import ingest
from mtlrec.stages import STAGES as DECLARED
from tests.conftest import REPO, tiny_raw_params, tool_env

STAGES = [stage.name for stage in DECLARED]


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
    params.write_text("simulate:\n  presets: {}\n  seeed: 3\n")
    done = subprocess.run(
        [sys.executable, "-m", "mtlrec.cli", "--params", str(params), "simulate"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "simulate.seeed: Extra inputs are not permitted" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture()
def params_file(tmp_path: Path) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_raw_params()))
    return params


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run `mtlrec ARGV`: it must exit 1 with one line on stderr and no traceback."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def _homedepot(path: Path, relevance: float = 2.5) -> Path:
    rows = [(1, 100001, "Angle bracket", "angle bracket", relevance), (2, 100002, "Deck", "d", 3)]
    pd.DataFrame(rows, columns=list(ingest.HOMEDEPOT_COLUMNS)).to_csv(path, index=False)
    return path


def _bytes(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


BAD_SOURCES = {
    "missing": (lambda p: p, "no such file"),
    "empty": (lambda p: _bytes(p, b""), "the file is empty"),
    "wrong_columns": (lambda p: _bytes(p, b"a,b\n1,2\n"), "missing columns"),
    "utf16": (lambda p: _bytes(p, _homedepot(p).read_text().encode("utf-16")), "UTF-16"),
    "relevance_7": (lambda p: _homedepot(p, relevance=7.0), r"relevance must be a number in 1..3"),
    "binary": (lambda p: _bytes(p, bytes(range(256)) * 4), r"UTF-16 \(or binary\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_SOURCES))
def test_ingest_of_a_bad_file_is_one_line_naming_it(
    case: str, tmp_path: Path, params_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, cause = BAD_SOURCES[case]
    source = make(tmp_path / "train.csv")
    argv = ["--params", str(params_file), "ingest", str(source), "--format", "homedepot"]
    err = _error(capsys, [*argv, "--out", str(tmp_path / "landing")])
    assert str(source) in err and re.search(cause, err), err
    assert not (tmp_path / "landing").exists()


def test_debug_shows_the_traceback(tmp_path: Path, params_file: Path) -> None:
    argv = ["--params", str(params_file), "--debug", "ingest", str(tmp_path / "none.csv")]
    with pytest.raises(ingest.IngestError, match="no such file"):
        main([*argv, "--format", "homedepot"])


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("simulate: [\n", r"not valid YAML: .* \(line 2, column 1\)"),
        ("\tsource: 1\n", "not valid YAML"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_malformed_params_are_one_line(
    text: str, cause: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(text)
    err = _error(capsys, ["--params", str(params), "simulate"])
    assert str(params) in err and re.search(cause, err), err


def test_land_from_a_failing_source_keeps_the_old_data(
    tmp_path: Path, params_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landing, truth = tmp_path / "landing", tmp_path / "truth"
    base = ["--params", str(params_file), "land", "--out", str(landing), "--truth", str(truth)]
    assert main(base) == 0
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    raw = yaml.safe_load(params_file.read_text())
    raw["source"] = {"kind": "homedepot", "path": str(tmp_path / "utf16.csv")}
    (tmp_path / "utf16.csv").write_bytes("id,product_uid\n".encode("utf-16"))
    params_file.write_text(yaml.safe_dump(raw))
    err = _error(capsys, base)
    assert "utf16.csv: UTF-16" in err
    after = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    after.pop(params_file), before.pop(params_file)
    after.pop(tmp_path / "utf16.csv")
    assert after == before  # the old landing zone and ground truth, byte for byte


def test_a_second_writer_waits_for_the_workspace_lock(tmp_path: Path, params_file: Path) -> None:
    command = [sys.executable, "-m", "mtlrec.cli", "--params", str(params_file), "simulate"]
    command += ["--out", str(tmp_path / "landing"), "--truth", str(tmp_path / "truth")]
    env = {k: v for k, v in tool_env().items() if k != workspace.LOCK_ENV}
    with workspace.locked(tmp_path, "a test holding the lock"):
        child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, cwd=REPO)
        time.sleep(3.0)
        assert child.poll() is None, "the second writer did not wait"
        assert not (tmp_path / "landing").exists()
    assert child.wait(timeout=120) == 0
    assert "waiting for the workspace lock" in child.stderr.read()
    assert "a test holding the lock" not in workspace.lock_file(tmp_path).read_text()
    assert (tmp_path / "landing" / "users").is_dir()
    assert workspace.LOCK_ENV not in os.environ
