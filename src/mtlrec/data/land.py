"""The landing stage: fill `data/landing/` from the source that params.yaml names.

The simulator also writes the ground truth; an ingested public dataset has none, so its
ground-truth folder stays empty and evaluation reports no oracle values.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mtlrec.config import SimulateConfig, SourceConfig


def run(
    source: SourceConfig, simulate_config: SimulateConfig, landing: Path, truth: Path
) -> object:
    if source.kind == "simulate":
        from mtlrec.data import simulate

        return simulate.run(simulate_config, landing, truth)
    from mtlrec.data import ingest

    file = Path(source.path)
    if not file.is_file():
        raise FileNotFoundError(f"source.kind is {source.kind!r} but {file} does not exist")
    # A switch of source must not leave the other source's batches behind.
    shutil.rmtree(landing, ignore_errors=True)
    shutil.rmtree(truth, ignore_errors=True)
    truth.mkdir(parents=True)
    return ingest.run(file, source.kind, landing)
