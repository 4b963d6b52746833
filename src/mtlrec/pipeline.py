"""The pipeline's steps as the Airflow DAG calls them: one function per task.

Each function takes the project root, loads params.yaml and calls the very `run` that the
matching `mtlrec <stage>` (and so the dvc stage) calls, with the paths of `Layout`. Training
and evaluation run as DVC stages so each DAG run is recorded in dvc.lock.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from mtlrec.config import load_params
from mtlrec.layout import Layout

# Stages the DAG runs natively before handing over to DVC; committed to dvc.lock afterwards.
NATIVE_STAGES = ("validate", "featurize", "feast_apply", "materialize")


def validate(root: Path) -> str:
    from mtlrec.validation import gate

    layout = Layout(root)
    report = gate.run(
        load_params(layout.params).validate_,
        layout.landing,
        layout.validated,
        layout.quarantine,
        root,
    )
    return f"validated {len(report.outcomes)} batches; data docs: {report.data_docs}"


def featurize(root: Path) -> str:
    from mtlrec.features import featurize as stage

    layout = Layout(root)
    return str(stage.run(load_params(layout.params).features, layout.validated, layout.features))


def feast_apply(root: Path) -> dict[str, list[str]]:
    from mtlrec.features import store

    layout = Layout(root)
    return store.apply(layout.feature_repo, layout.feast_apply_summary)


def materialize(root: Path, end: datetime | None = None) -> str:
    """Full load from the epoch up to `end`: upserts, so a rerun changes nothing."""
    from mtlrec.features import store

    layout = Layout(root)
    summary = store.materialize(
        layout.feature_repo,
        end=end or datetime.now(UTC),
        start=datetime(2000, 1, 1, tzinfo=UTC),
        summary_file=layout.materialize_summary,
    )
    return f"materialized {', '.join(summary.views)} up to {summary.end}"


@contextmanager
def dvc_lock(root: Path) -> Iterator[None]:
    """Serialize DVC commands in one workspace: two concurrent `dvc repro` fail on DVC's lock."""
    lock_file = root / ".dvc" / "tmp" / "mtlrec-dvc.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def dvc(root: Path, *args: str) -> str:
    """Run `dvc ARGS` in the project under the workspace lock; fail with DVC's own output."""
    executable = Path(sys.executable).with_name("dvc")
    env = {**os.environ, "PATH": f"{executable.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with dvc_lock(root):
        done = subprocess.run(
            [str(executable), *args], cwd=root, capture_output=True, text=True, env=env
        )
    output = f"{done.stdout}\n{done.stderr}".strip()
    if done.returncode != 0:
        raise RuntimeError(f"`dvc {' '.join(args)}` failed (exit {done.returncode}):\n{output}")
    return output


def record_native_stages(root: Path) -> str:
    """Record what the native tasks produced in dvc.lock, so the run is reproducible."""
    return dvc(root, "commit", "--force", *NATIVE_STAGES)


def run_stage(root: Path, stage: str) -> str:
    """Reproduce one dvc stage only (its upstream ran as earlier DAG tasks)."""
    return dvc(root, "repro", "--single-item", stage)
