"""The promote stage on real trained models: idempotent retries and a damaged champion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mtlrec.cli import main
from mtlrec.config import EvaluateConfig, GateConfig
from mtlrec.evaluation import evaluate, promote
from mtlrec.registry import Registry, RegistryError
from mtlrec.training.synthetic import write_synthetic_dataset
from mtlrec.training.train import run as train
from tests.conftest import tiny_raw_params
from tests.evaluation.test_evaluate import MODEL, TRAIN, write_truth


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("promote")
    data = write_synthetic_dataset(root / "data", 1200, 150, seed=2)
    paths = {"root": root, "data": data, "truth": write_truth(data, root / "truth")}
    paths["cache"] = root / "cache"
    for name, seed in (("first", 0), ("second", 1)):
        train(MODEL, TRAIN.model_copy(update={"seed": seed}), data, root / name, paths["cache"])
        metrics = root / f"{name}.json"
        evaluate.run(EvaluateConfig(), root / name, data, paths["truth"], paths["cache"], metrics)
    return paths


def _paths(models: dict[str, Path], name: str, registry: Path) -> promote.PromotePaths:
    return promote.PromotePaths(
        challenger=models["root"] / name,
        challenger_metrics=models["root"] / f"{name}.json",
        data=models["data"],
        truth=models["truth"],
        cache=models["cache"],
        registry=registry,
        dvc_lock=registry.parent / "dvc.lock",
        out=registry.parent / "gate.json",
    )


FORCED = GateConfig(force_promote=True)


def test_a_retry_of_a_promotion_changes_nothing(models: dict, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    first = promote.run(GateConfig(), EvaluateConfig(), _paths(models, "first", registry))
    assert (first.promoted, first.version) == (True, "v1")
    report = (registry.parent / "gate.json").read_bytes()
    again = promote.run(GateConfig(), EvaluateConfig(), _paths(models, "first", registry))
    assert again == first and (registry.parent / "gate.json").read_bytes() == report
    assert Registry(registry).versions() == ["v1"]
    second = promote.run(FORCED, EvaluateConfig(), _paths(models, "second", registry))
    report = (registry.parent / "gate.json").read_bytes()
    retried = promote.run(FORCED, EvaluateConfig(), _paths(models, "second", registry))
    assert retried == second and retried.champion_before == "v1"  # judged against v1 again
    assert (registry.parent / "gate.json").read_bytes() == report
    assert [entry["version"] for entry in Registry(registry).history()] == ["v1", "v2"]


def test_a_crash_between_register_and_alias_is_healed_by_the_retry(
    models: dict, tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    promote.run(GateConfig(), EvaluateConfig(), _paths(models, "first", registry))
    Registry(registry).register(models["root"] / "second", {"run_id": "crashed"})
    assert Registry(registry).production() == "v1"  # the first try died here
    outcome = promote.run(FORCED, EvaluateConfig(), _paths(models, "second", registry))
    assert (outcome.promoted, outcome.version) == (True, "v2")
    assert Registry(registry).production() == "v2" and Registry(registry).versions() == ["v1", "v2"]


@pytest.mark.parametrize("damage", ["corrupt_config", "missing_weights", "truncated_spec"])
def test_a_broken_champion_fails_loudly_and_says_what_to_do(
    models: dict, tmp_path: Path, damage: str
) -> None:
    registry = tmp_path / "registry"
    promote.run(GateConfig(), EvaluateConfig(), _paths(models, "first", registry))
    champion = Registry(registry).path("v1")
    if damage == "corrupt_config":
        (champion / "config.json").write_text('{"format_version": 1, "model": ')
    elif damage == "missing_weights":
        (champion / "model.safetensors").unlink()
    else:
        spec = champion / "feature_spec.json"
        spec.write_bytes(spec.read_bytes()[:100])
    with pytest.raises(RegistryError, match=r"champion v1 is broken: .*force_promote"):
        promote.run(GateConfig(), EvaluateConfig(), _paths(models, "second", registry))
    assert Registry(registry).versions() == ["v1"]  # nothing registered, nothing moved
    forced = promote.run(FORCED, EvaluateConfig(), _paths(models, "second", registry))
    assert forced.promoted and forced.version == "v2"
    assert forced.reasons[0].startswith("champion v1 is broken") and Registry(registry).production()


def test_cli_promote_with_a_broken_champion_is_one_line(
    models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "registry"
    promote.run(GateConfig(), EvaluateConfig(), _paths(models, "first", registry))
    (Registry(registry).path("v1") / "config.json").write_text("{")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_raw_params()))
    paths = _paths(models, "second", registry)
    argv = ["--params", str(params), "promote", "--model", str(paths.challenger)]
    argv += ["--metrics", str(paths.challenger_metrics), "--data", str(paths.data)]
    argv += ["--truth", str(paths.truth), "--cache", str(paths.cache), "--registry", str(registry)]
    argv += ["--lock", str(paths.dvc_lock), "--out", str(paths.out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "v1/config.json" in err and "force_promote" in err


def test_cli_rollback_to_a_version_without_weights_is_refused(
    models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "registry"
    promote.run(GateConfig(), EvaluateConfig(), _paths(models, "first", registry))
    promote.run(FORCED, EvaluateConfig(), _paths(models, "second", registry))
    (Registry(registry).path("v1") / "model.safetensors").unlink()
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_raw_params()))
    assert main(["--params", str(params), "rollback", "--registry", str(registry)]) == 1
    err = capsys.readouterr().err
    assert "v1/model.safetensors is missing" in err and "Traceback" not in err
    assert json.loads((registry / "production.json").read_text())["version"] == "v2"
