"""The registry: versions, the production alias, and every way its files can be damaged."""

import json
import multiprocessing
from pathlib import Path

import pytest

from mtlrec.registry import HISTORY_FILE, Registry, RegistryError, data_hashes


def _model(folder: Path, marker: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_text(marker)
    (folder / "config.json").write_text(json.dumps({"marker": marker}))
    (folder / "feature_spec.json").write_text("{}")
    return folder


def _promoted(tmp_path: Path, *markers: str) -> Registry:
    registry = Registry(tmp_path / "registry")
    for marker in markers:
        registry.promote(_model(tmp_path / marker, marker), {"run_id": marker}, "test")
    return registry


def test_register_numbers_versions_copies_files_and_records_checksums(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    first = registry.register(_model(tmp_path / "a", "A"), {"run_id": "r1"})
    second = registry.register(_model(tmp_path / "b", "B"), {"run_id": "r2"})
    assert (first, second) == ("v1", "v2")
    assert (registry.path("v2") / "model.safetensors").read_text() == "B"
    metadata = registry.metadata("v1")
    assert metadata["run_id"] == "r1"
    assert set(metadata["files"]) == {"model.safetensors", "config.json", "feature_spec.json"}
    assert registry.production() is None
    assert registry.problems("v1") == []


def test_the_same_model_registered_twice_keeps_its_version(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    model = _model(tmp_path / "a", "A")
    assert registry.register(model, {}) == registry.register(model, {}) == "v1"
    assert registry.versions() == ["v1"]


def test_a_retry_after_a_crash_between_register_and_alias_completes(tmp_path: Path) -> None:
    registry = _promoted(tmp_path, "a")
    model = _model(tmp_path / "b", "B")
    registry.register(model, {"run_id": "b"})  # the first try died right after this
    assert registry.production() == "v1"
    assert registry.promote(model, {"run_id": "b"}, "retry") == "v2"
    assert registry.production() == "v2" and registry.versions() == ["v1", "v2"]
    assert registry.promote(model, {"run_id": "b"}, "again") == "v2"  # idempotent
    assert [entry["version"] for entry in registry.history()] == ["v1", "v2"]


def test_alias_moves_and_rolls_back(tmp_path: Path) -> None:
    registry = _promoted(tmp_path, "a", "b", "c")
    registry.set_production("v1", "first")
    assert registry.production() == "v1"
    assert registry.rollback() == "v3"
    assert registry.rollback(to="v2") == "v2"
    assert [entry["version"] for entry in registry.history()] == [
        "v1",
        "v2",
        "v3",
        "v1",
        "v3",
        "v2",
    ]
    leftovers = [p.name for p in registry.root.iterdir() if p.name.startswith(".")]
    assert leftovers == [".lock"]  # staging and temporary alias files were renamed away


def test_rollback_without_history_and_unknown_version_fail(tmp_path: Path) -> None:
    registry = _promoted(tmp_path, "a")
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    with pytest.raises(RegistryError, match="no model version 'v9'"):
        registry.set_production("v9", "typo")
    for hostile in ("../v1", "/etc", "v1/..", "v0", "", "v1 "):
        with pytest.raises(RegistryError, match="is not a model version"):
            registry.rollback(to=hostile)


def test_rollback_refuses_a_version_whose_weights_are_missing(tmp_path: Path) -> None:
    registry = _promoted(tmp_path, "a", "b")
    (registry.path("v1") / "model.safetensors").unlink()
    with pytest.raises(RegistryError, match=r"v1/model.safetensors is missing"):
        registry.rollback()
    assert registry.production() == "v2"  # untouched


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "delete"])
def test_a_damaged_file_is_named_and_blocks_production(tmp_path: Path, damage: str) -> None:
    registry = _promoted(tmp_path, "a", "b")
    config = registry.path("v1") / "config.json"
    if damage == "truncate":
        config.write_text(config.read_text()[:5])
    elif damage == "corrupt":
        config.write_text(json.dumps({"marker": "tampered"}))
    else:
        config.unlink()
    problems = registry.problems("v1")
    assert problems and all("v1/config.json" in problem for problem in problems)
    with pytest.raises(RegistryError, match="v1 cannot become production.*healthy versions: v2"):
        registry.set_production("v1", "no")
    assert registry.healthy() == ["v2"]


def test_a_truncated_alias_is_a_one_line_error_and_rollback_repairs_it(tmp_path: Path) -> None:
    registry = _promoted(tmp_path, "a", "b")
    alias = registry.root / "production.json"
    alias.write_text(alias.read_text()[:7])
    with pytest.raises(RegistryError, match=r"production.json is damaged .*rollback --to"):
        registry.production()
    assert registry.rollback(to="v1") == "v1"
    assert registry.production() == "v1"


def test_damaged_metadata_and_a_torn_history_line(tmp_path: Path) -> None:
    registry = _promoted(tmp_path, "a", "b")
    (registry.path("v1") / "metadata.json").write_text("{not json")
    assert any("metadata.json is damaged" in problem for problem in registry.problems("v1"))
    with (registry.root / HISTORY_FILE).open("a") as history:
        history.write('{"version": "v')  # a crash mid-append
    assert [entry["version"] for entry in registry.history()] == ["v1", "v2"]


def test_an_older_registry_keeps_its_history(tmp_path: Path) -> None:
    registry = _promoted(tmp_path, "a", "b")
    (registry.root / HISTORY_FILE).unlink()
    legacy = {"version": "v2", "history": [{"version": "v1"}, {"version": "v2"}]}
    (registry.root / "production.json").write_text(json.dumps(legacy))
    assert registry.rollback() == "v1"
    assert [entry["version"] for entry in registry.history()] == ["v1", "v2", "v1"]


def _register_in_process(root: str, folder: str) -> str:
    return Registry(Path(root)).register(Path(folder), {})


def test_concurrent_registrations_get_distinct_versions(tmp_path: Path) -> None:
    folders = [str(_model(tmp_path / f"m{i}", f"M{i}")) for i in range(6)]
    root = str(tmp_path / "registry")
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        versions = pool.starmap(_register_in_process, [(root, folder) for folder in folders])
    assert sorted(versions, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(1, 7)]
    markers = {(Registry(Path(root)).path(v) / "model.safetensors").read_text() for v in versions}
    assert markers == {f"M{i}" for i in range(6)}


def test_a_folder_without_weights_is_not_registered(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegistryError, match="lacks model.safetensors"):
        Registry(tmp_path / "registry").register(empty, {})


def test_data_hashes_come_from_dvc_lock(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  train:\n    cmd: x\n    deps:\n"
        "    - path: data/training\n      md5: abc.dir\n"
    )
    assert data_hashes(lock) == {"data/training": "abc.dir"}
    assert data_hashes(tmp_path / "missing.lock") == {}
    (tmp_path / "bad.lock").write_text("stages: [unclosed")
    assert data_hashes(tmp_path / "bad.lock") == {}
