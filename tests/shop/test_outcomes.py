"""The shoppers' model: the intercepts fitted on the history play any other traffic."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mtlrec.config import Params
from mtlrec.shop import (
    Behaviour,
    Traffic,
    build_shop,
    calibrate,
    concat_traffic,
    epoch_ns,
    load_behaviour,
    outcome_probabilities,
    save_behaviour,
    simulate_day,
    streams,
)


def _history(params: Params) -> Traffic:
    """The tiny shop's simulated traffic, as `mtlrec land` drew it."""
    config = params.simulate
    size, rng = config.active, streams(config.seed)
    shop = build_shop(config)
    days = [config.start_date + timedelta(days=d) for d in range(size.n_days)]
    daily = [
        simulate_day(
            rng["traffic"], shop, d, size.impressions_per_day, config.search_share, epoch_ns(day)
        )
        for d, day in enumerate(days)
    ]
    return concat_traffic(daily)


def test_the_written_truth_is_the_behaviour_played_on_the_history(
    params: Params, tiny_shop: Path
) -> None:
    shop, traffic = build_shop(params.simulate), _history(params)
    behaviour = calibrate(traffic, shop)
    assert load_behaviour(tiny_shop / "data" / "ground_truth") == behaviour
    p_click, p_buy, true_relevance = outcome_probabilities(traffic, shop, behaviour)
    truth = pd.read_parquet(tiny_shop / "data" / "ground_truth" / "impressions.parquet")
    assert np.array_equal(truth["p_click"].to_numpy(), p_click)  # bit for bit
    assert np.array_equal(truth["p_purchase_given_click"].to_numpy(), p_buy)
    # NaN in the feed, where no query asks for anything.
    assert np.array_equal(truth["true_relevance"].to_numpy(), true_relevance, equal_nan=True)


def test_new_traffic_is_played_with_the_fitted_behaviour_not_refitted(params: Params) -> None:
    shop, traffic = build_shop(params.simulate), _history(params)
    behaviour = calibrate(traffic, shop)
    first = replace(traffic, position=np.ones_like(traffic.position))  # every item on top
    at_top, _, _ = outcome_probabilities(first, shop, behaviour)
    as_shown, _, _ = outcome_probabilities(traffic, shop, behaviour)
    assert at_top.mean() > as_shown.mean()  # the first position is seen more: more clicks
    refit, _, _ = outcome_probabilities(first, shop, calibrate(first, shop))
    assert abs(refit.mean() - as_shown.mean()) < 1e-3  # a refit would hide the gain


def test_behaviour_round_trips_exactly(tmp_path: Path) -> None:
    behaviour = Behaviour(-2.123456789012345, 0.1 + 0.2)
    save_behaviour(behaviour, tmp_path)
    assert load_behaviour(tmp_path) == behaviour
    assert load_behaviour(tmp_path / "missing") is None
