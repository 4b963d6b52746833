"""The landing stage: fill `data/landing/` from the source that params.yaml names.

The simulator also writes the ground truth; an ingested public dataset has none, so its
ground-truth folder stays empty and evaluation reports no oracle values.

The new landing zone and ground truth are written beside the old ones and swapped in only when
complete: a source that fails (a missing or unreadable file) leaves the old data exactly as it
was. The stage's outputs are `persist`ed in dvc.yaml, so DVC does not delete them first either.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mtlrec.config import SimulateConfig, SourceConfig


def run(
    source: SourceConfig, simulate_config: SimulateConfig, landing: Path, truth: Path
) -> object:
    landing, truth = Path(landing), Path(truth)
    for target in (landing, truth):
        _recover(target)
    new_landing, new_truth = _staging(landing), _staging(truth)
    try:
        summary = _fill(source, simulate_config, new_landing, new_truth)
    except BaseException:
        shutil.rmtree(new_landing, ignore_errors=True)  # only the unfinished new copy
        shutil.rmtree(new_truth, ignore_errors=True)
        raise
    _swap(new_landing, landing)
    _swap(new_truth, truth)
    return summary


def _fill(source: SourceConfig, simulate_config: SimulateConfig, landing: Path, truth: Path):
    if source.kind == "simulate":
        from mtlrec.data import simulate

        return simulate.run(simulate_config, landing, truth)
    from mtlrec.data import ingest

    return ingest.run(Path(source.path), source.kind, landing)


def _staging(target: Path) -> Path:
    staging = target.with_name(f".{target.name}.new")
    shutil.rmtree(staging, ignore_errors=True)  # an unfinished copy of an earlier crash
    staging.mkdir(parents=True)
    return staging


def _old(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def _recover(target: Path) -> None:
    """A crash between the two renames of `_swap` left the old copy aside: put it back."""
    if not target.exists() and _old(target).exists():
        _old(target).rename(target)


def _swap(new: Path, target: Path) -> None:
    old = _old(target)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)
