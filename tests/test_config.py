from pathlib import Path

import pytest
import yaml

from mtlrec.config import ConfigError, Params, load_params, parse_params
from tests.conftest import tiny_raw_params

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_load_and_are_frozen() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.simulate.active.n_users > params.simulate.presets["tiny"].n_users
    with pytest.raises(Exception, match="frozen"):
        params.train.epochs = 99


def test_unknown_key_is_named() -> None:
    raw = tiny_raw_params(train={"epoch": 3})
    with pytest.raises(ConfigError, match=r"train\.epoch: Extra inputs are not permitted"):
        parse_params(raw)


def test_mistyped_value_is_named() -> None:
    raw = tiny_raw_params(model={"bottom": "transformer"})
    with pytest.raises(ConfigError, match=r"model\.bottom"):
        parse_params(raw)


def test_unknown_size_is_rejected() -> None:
    raw = tiny_raw_params(simulate={"preset": "huge"})
    with pytest.raises(ConfigError, match="huge"):
        parse_params(raw)


def test_cvr_without_ctr_is_rejected() -> None:
    with pytest.raises(ConfigError, match="needs task 'ctr'"):
        parse_params(tiny_raw_params(model={"tasks": ["cvr", "relevance"]}))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")


DVC_DROPPED = {"size", "nfiles"}  # param keys DVC's run cache ignores (iterative/dvc#10296)


def _keys(node: object, path: str = "") -> list[str]:
    if not isinstance(node, dict):
        return []
    found = []
    for key, value in node.items():
        found += [f"{path}{key}", *_keys(value, f"{path}{key}.")]
    return found


def _fields(model: type, path: str = "") -> list[str]:
    found = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        found.append(f"{path}{key}")
        annotation = info.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            found += _fields(annotation, f"{path}{key}.")
    return found


def test_no_param_key_is_one_that_dvc_run_cache_drops() -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    keys = _keys(raw) + _fields(Params)
    dropped = [key for key in keys if key.rsplit(".", 1)[-1] in DVC_DROPPED]
    assert not dropped, f"DVC's run cache would ignore {dropped}"
    assert "simulate.presets.tiny.n_users" in keys and "train.loss_weights" in keys


def _differences(default: object, loaded: object, path: str) -> list[str]:
    """Dotted keys where a code default and the loaded params disagree."""
    from pydantic import BaseModel

    if isinstance(default, BaseModel) and isinstance(loaded, BaseModel):
        return [
            found
            for name in type(default).model_fields
            for found in _differences(
                getattr(default, name), getattr(loaded, name), f"{path}.{name}"
            )
        ]
    return [] if default == loaded else [f"{path}: code {default!r}, params.yaml {loaded!r}"]


def test_the_code_defaults_are_the_values_of_params_yaml() -> None:
    """One set of defaults: a config built in code (tests, benchmarks, a notebook) is the
    pipeline's unless it says otherwise."""
    from pydantic_core import PydanticUndefined

    loaded = load_params(REPO / "params.yaml")
    found = []
    for name, field in Params.model_fields.items():
        if field.default is not PydanticUndefined:
            found += _differences(field.default, getattr(loaded, name), field.alias or name)
    simulate = type(loaded.simulate).model_fields
    for name in ("seed", "start_date", "search_share", "preset"):
        found += _differences(simulate[name].default, getattr(loaded.simulate, name), name)
    assert found == []


def test_the_baselines_train_with_their_own_batch_and_rate() -> None:
    params = parse_params(tiny_raw_params(baselines={"batch_size": 256, "lr": 0.001}))
    own = params.baselines.train(params.train)
    assert (own.batch_size, own.lr) == (256, 0.001)
    assert own.model_copy(update={"batch_size": 512, "lr": 0.002}) == params.train  # the rest
    shared = parse_params(tiny_raw_params(baselines={"batch_size": None, "lr": None}))
    assert shared.baselines.train(shared.train) == shared.train


def test_the_defaults_give_the_baselines_a_smaller_batch_than_the_challenger() -> None:
    """The single-task relevance model trains on ~71,000 judgements alone: at the challenger's
    batch it gets too few steps an epoch (see params.yaml)."""
    params = load_params(REPO / "params.yaml")
    assert params.baselines.train(params.train).batch_size < params.train.batch_size
