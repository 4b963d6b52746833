import json
from pathlib import Path

import pytest

from mtlrec.registry import Registry, RegistryError, data_hashes


def _model(folder: Path, marker: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_text(marker)
    (folder / "config.json").write_text("{}")
    (folder / "feature_spec.json").write_text("{}")
    return folder


def test_register_numbers_versions_and_copies_files(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    first = registry.register(_model(tmp_path / "a", "A"), {"run_id": "r1"})
    second = registry.register(_model(tmp_path / "b", "B"), {"run_id": "r2"})
    assert (first, second) == ("v1", "v2")
    assert (registry.path("v2") / "model.safetensors").read_text() == "B"
    assert json.loads((registry.path("v1") / "metadata.json").read_text())["run_id"] == "r1"
    assert registry.production() is None


def test_alias_moves_and_rolls_back(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    for name in ("a", "b", "c"):
        registry.register(_model(tmp_path / name, name), {})
    registry.set_production("v1", "first")
    registry.set_production("v3", "better")
    assert registry.production() == "v3"
    assert registry.rollback() == "v1"
    assert registry.production() == "v1"
    assert registry.rollback(to="v2") == "v2"
    assert [entry["version"] for entry in registry.history()] == ["v1", "v3", "v1", "v2"]
    leftovers = [p.name for p in registry.root.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # staging and temporary alias files were renamed away


def test_rollback_without_history_and_unknown_version_fail(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register(_model(tmp_path / "a", "a"), {})
    registry.set_production("v1", "first")
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    with pytest.raises(RegistryError, match="no model version 'v9'"):
        registry.set_production("v9", "typo")


def test_data_hashes_come_from_dvc_lock(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  train:\n    cmd: x\n    deps:\n"
        "    - path: data/training\n      md5: abc.dir\n"
    )
    assert data_hashes(lock) == {"data/training": "abc.dir"}
    assert data_hashes(tmp_path / "missing.lock") == {}
