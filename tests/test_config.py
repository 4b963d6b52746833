from pathlib import Path

import pytest

from mtlrec.config import ConfigError, load_params, parse_params
from tests.conftest import tiny_raw_params

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_load_and_are_frozen() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.simulate.active.n_users > params.simulate.sizes["tiny"].n_users
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
    raw = tiny_raw_params(simulate={"size": "huge"})
    with pytest.raises(ConfigError, match="huge"):
        parse_params(raw)


def test_cvr_without_ctr_is_rejected() -> None:
    with pytest.raises(ConfigError, match="needs task 'ctr'"):
        parse_params(tiny_raw_params(model={"tasks": ["cvr", "relevance"]}))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")
