"""Suite parameters from the accepted batches: known keys, the day window, volume and drift."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from pydantic import ValidationError

from mtlrec.config import ValidateConfig
from mtlrec.validation.reference import (
    KnownKeys,
    TableReference,
    batch_window,
    time_parameters,
)


def test_key_parameters_are_narrowed_to_the_batch() -> None:
    known = KnownKeys()
    known.add("users", pd.DataFrame({"user_id": range(1000)}))
    known.add("items", pd.DataFrame({"item_id": [5, 6, 7]}))
    batch = pd.DataFrame({"user_id": [3, 3, 2000], "item_id": [5, 8, None]})
    parameters = known.parameters(batch)
    assert parameters["known_user_ids"] == [3]  # not all 1000 known users
    assert parameters["unknown_user_ids"] == [2000]
    assert parameters["known_item_ids"] == [5.0] and parameters["unknown_item_ids"] == [8.0]
    assert parameters["known_impression_ids"] == parameters["unknown_impression_ids"] == []


def test_batch_window_is_the_utc_day_of_its_id() -> None:
    assert batch_window("2026-01-02") == {
        "batch_start": "2026-01-02T00:00:00+00:00",
        "batch_end": "2026-01-03T00:00:00+00:00",
    }
    assert batch_window("latest") is None


def _impressions(rows: int, clicks: int) -> pd.DataFrame:
    return pd.DataFrame({"click": [1] * clicks + [0] * (rows - clicks)})


def test_volume_bounds_are_ratios_of_the_median_batch() -> None:
    reference = TableReference()
    for rows in (100, 400, 420):
        reference.add(_impressions(rows, rows // 20))
    parameters = reference.parameters(ValidateConfig(), batch_rows=400)
    assert (parameters["rows_min"], parameters["rows_max"]) == (200, 800)


def test_ctr_bounds_allow_for_the_noise_of_small_batches() -> None:
    reference = TableReference()
    reference.add(_impressions(10_000, 500))  # CTR 5%
    config = ValidateConfig(ctr_tolerance=0.2, noise_sigmas=4.0)
    small = reference.parameters(config, batch_rows=100)
    large = reference.parameters(config, batch_rows=1_000_000)
    assert small["ctr_min"] == 0.0 and small["ctr_max"] > 0.13  # 4 x 2.2% noise on 100 rows
    assert large["ctr_min"] == pytest.approx(0.04, abs=1e-3)
    assert large["ctr_max"] == pytest.approx(0.06, abs=1e-3)


def test_price_and_category_reference() -> None:
    reference = TableReference()
    items = pd.DataFrame({"price": [10.0, 20.0, 30.0, None], "category": ["a", "a", "b", "b"]})
    reference.add(items)
    parameters = reference.parameters(ValidateConfig(price_quantiles=(0.5,)), batch_rows=4)
    assert parameters["price_quantile_ranges"] == {
        "quantiles": [0.5],
        "value_ranges": [[pytest.approx(20 / 1.5), pytest.approx(30.0)]],
    }
    assert parameters["category_partition"] == {"values": ["a", "b"], "weights": [0.5, 0.5]}
    assert parameters["category_max_kl"] > ValidateConfig().category_max_kl  # 4 items: noisy
    assert "ctr_min" not in parameters  # items have no clicks


def test_an_empty_reference_is_empty() -> None:
    assert TableReference().empty


@pytest.mark.parametrize(
    "values",
    [
        {"volume_min_ratio": 3.0, "volume_max_ratio": 2.0},
        {"price_quantiles": (0.5, 1.5)},
        {"row_policy": "drop"},
        {"split_max_share": 2.0},
    ],
)
def test_inconsistent_settings_fail(values: dict) -> None:
    with pytest.raises(ValidationError):
        ValidateConfig(**values)


def test_now_is_utc_whatever_the_caller_passes() -> None:
    paris = datetime(2026, 1, 2, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert time_parameters(paris) == {"now": "2026-01-02T12:00:00+00:00"}
    assert time_parameters(datetime(2026, 1, 2, 12)) == {"now": "2026-01-02T12:00:00+00:00"}
