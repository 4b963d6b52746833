"""Shared fixtures: the tiny synthetic shop and throwaway copies of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mtlrec.config import Params, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]
# What a copy of the project needs to run its pipeline (src is copied because dvc.yaml hashes it).
PROJECT_FILES = (
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    "feature_repo",
    "gx",
    "src",
    "dags",
    "sources",
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("FEAST_USAGE", "False")


def tiny_raw_params(**overrides: dict) -> dict:
    """params.yaml as a dict, switched to the tiny sizes, with per-section overrides."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["simulate"]["preset"] = "tiny"
    # A tiny shop's online test needs no 4,000 sessions (5 s of every tiny pipeline run).
    raw["online_test"]["sessions"] = 1000
    # A tiny shop has a few thousand training rows: at the default 2,048 rows a step, one epoch
    # is a handful of steps and the model loses the online test to the popularity ranker. The
    # baselines train as the challenger does (null: `train`'s batch and rate), as before the
    # two had their own.
    raw["train"].update(batch_size=512, lr=0.002)
    raw["baselines"].update(batch_size=None, lr=None)
    for section, values in overrides.items():
        raw[section] = {**raw.get(section, {}), **values}
    return raw


@pytest.fixture(scope="session")
def params() -> Params:
    return parse_params(tiny_raw_params())


@pytest.fixture(scope="session")
def tiny_shop(tmp_path_factory: pytest.TempPathFactory, params: Params) -> Path:
    """The tiny synthetic shop under <tmp>/data/{landing,ground_truth} (read-only for tests)."""
    from mtlrec.data import simulate

    root = tmp_path_factory.mktemp("shop")
    simulate.run(params.simulate, root / "data" / "landing", root / "data" / "ground_truth")
    return root


def copy_project(target: Path, **overrides: dict) -> Path:
    """A git+DVC workspace with this project's pipeline and tiny params, for the real tools."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source,
                target / name,
                ignore=shutil.ignore_patterns("__pycache__", "uncommitted", "*.egg-info"),
            )
        else:
            shutil.copy2(source, target / name)
    shutil.copytree(REPO / ".dvc", target / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    (target / "params.yaml").write_text(yaml.safe_dump(tiny_raw_params(**overrides)))
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    load_params(target / "params.yaml")  # fail early on a bad override
    return target


def tool_env() -> dict[str, str]:
    """Environment for child processes: this venv's tools first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def unavailable(reason: str) -> None:
    """A service or browser a test needs is missing: the test fails, never skips (the tests
    run against the real PostgreSQL, Redis and Chromium; `make test` starts or installs them
    through scripts/ensure_test_deps.sh)."""
    pytest.fail(f"{reason} (`make test` starts the services: scripts/ensure_test_deps.sh)")


@pytest.fixture(scope="session")
def chromium() -> None:
    """Headless Chromium and its WebDriver (tests/browser.py drives them)."""
    from tests.browser import CHROMEDRIVER, CHROMIUM

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        unavailable(
            f"{CHROMIUM} or {CHROMEDRIVER} missing: scripts/ensure_test_deps.sh installs them"
        )


def fresh_python(code: str) -> list[str]:
    """What `code` prints in a new Python process (what it imports starts from nothing there),
    split into words; the process must succeed."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def run_dvc(root: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["dvc", *args], cwd=root, env=tool_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline reproduced once per session (`dvc repro`, 2 epochs): a trained and
    promoted model, a materialized local store, the retrieval index. Read-only for tests:
    a test that changes it works on a copy."""
    root = copy_project(tmp_path_factory.mktemp("pipeline"), train={"epochs": 2})
    run_dvc(root, "repro")
    return root
