"""A failed validation stops the run before featurize: the online store and the champion model
are exactly as they were (the real pipeline functions, the real Feast store)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mtlrec import pipeline
from mtlrec.validation.gate import ValidationFailed
from tests.conftest import copy_project
from tests.validation.conftest import redated

pytestmark = pytest.mark.slow
# The DAG's order up to the online store (each a `dvc repro --single-item` task); each step
# runs only if the one before succeeded.
STEPS = ("validate", "featurize", "feast_apply", "materialize")


def _fingerprint(*folders: Path) -> dict[str, str]:
    """sha256 and mtime of every file under the folders."""
    return {
        str(path): f"{hashlib.sha256(path.read_bytes()).hexdigest()} {path.stat().st_mtime_ns}"
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _champion(root: Path) -> Path:
    """A production model in the registry, as promote leaves it."""
    version = root / "models" / "registry" / "v1"
    version.mkdir(parents=True)
    (version / "model.safetensors").write_bytes(b"champion weights")
    (version / "config.json").write_text('{"bottom": "mmoe"}')
    (root / "models" / "registry" / "production.json").write_text('{"version": "v1"}')
    return root / "models"


def test_a_failed_validation_leaves_the_online_store_and_champion_untouched(
    tmp_path: Path, tiny_shop: Path
) -> None:
    root = copy_project(tmp_path / "project")
    shutil.copytree(tiny_shop / "data" / "landing", root / "data" / "landing")
    for step in STEPS:
        pipeline.run_stage(root, step)
    store, features = root / "data" / "feast", root / "data" / "features"
    assert (store / "online_store.db").is_file()
    before = _fingerprint(store, features, _champion(root))

    # a new day lands with impressions of items nobody knows
    bad = redated(root / "data" / "landing", "2026-01-06", "2026-01-07")
    bad.loc[bad.index[:5], "item_id"] = 999_999_999
    bad.to_parquet(root / "data" / "landing" / "impressions" / "2026-01-07.parquet", index=False)
    ran = []
    with pytest.raises(ValidationFailed, match="item_id=999999999"):
        for step in STEPS:
            pipeline.run_stage(root, step)
            ran.append(step)

    assert ran == []  # validate failed: featurize, feast apply and materialize never ran
    assert _fingerprint(store, features, root / "models") == before
    held = root / "data" / "quarantine" / "impressions" / "2026-01-07"
    assert len(pd.read_parquet(held / "2026-01-07.parquet")) == len(bad)
    assert (held / "result.json").is_file()
