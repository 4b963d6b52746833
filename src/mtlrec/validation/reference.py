"""What the batches accepted so far in this run say about the next one: the suite parameters.

Suites are data and hold no numbers that depend on other batches; they name parameters
(`{"$PARAMETER": "ctr_min"}`) that the gate computes here for each batch:

- every batch: `now`, `batch_start` and `batch_end` (the day its id names); and for each key
  (`user_id`, `item_id`, `impression_id`) the batch's values that accepted batches already hold,
  `known_<key>s` (a key seen again), and those they do not, `unknown_<key>s` (an orphan). Both
  are narrowed to the batch's own values: usually empty, where the set of every id ever seen
  would make each validation slow (GX copies its arguments dozens of times per expectation) and
  fill every validation result and Data Docs page;
- reference suites, from the earlier accepted batches of the same table: `rows_min`, `rows_max`
  (volume), `ctr_min`, `ctr_max` (the mean of `click`), `price_quantile_ranges`,
  `category_partition` and `category_max_kl` (category mix), with the tolerances of params.yaml.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from mtlrec.config import ValidateConfig
from mtlrec.contract import PRIMARY_KEYS


@dataclass
class KnownKeys:
    """Keys accepted so far in this run: the targets of referential-integrity checks."""

    keys: dict[str, set[Any]] = field(default_factory=lambda: {t: set() for t in PRIMARY_KEYS})

    def add(self, table: str, frame: pd.DataFrame) -> None:
        if table in PRIMARY_KEYS:
            self.keys[table].update(frame[PRIMARY_KEYS[table]].dropna().tolist())

    def parameters(self, frame: pd.DataFrame) -> dict[str, list[Any]]:
        """For each key column of `frame`: `known_<key>s`, its values that accepted batches
        already hold (a key seen again), and `unknown_<key>s`, those they do not (an orphan)."""
        parameters = {}
        for table, column in PRIMARY_KEYS.items():
            present = frame[column].dropna().unique().tolist() if column in frame else []
            seen = {value: _hashable_in(value, self.keys[table]) for value in present}
            parameters[f"known_{column}s"] = _sorted(v for v in present if seen[v])
            parameters[f"unknown_{column}s"] = _sorted(v for v in present if not seen[v])
        return parameters


def _sorted(values: Any) -> list[Any]:
    values = list(values)
    try:
        return sorted(values)
    except TypeError:  # mixed types in a malformed column: keep the file's order
        return values


def _hashable_in(value: Any, known: set[Any]) -> bool:
    try:
        return value in known
    except TypeError:  # an unhashable cell (a list) in a malformed batch is simply unknown
        return False


def batch_window(batch_id: str) -> dict[str, str] | None:
    """`batch_start`, `batch_end`: the UTC day that a batch id (YYYY-MM-DD, with or without a
    `_suffix`) names, or None."""
    from mtlrec.names import batch_day

    try:
        day = date.fromisoformat(batch_day(batch_id) or "")
    except ValueError:
        return None
    start = pd.Timestamp(day, tz="UTC")
    return {
        "batch_start": start.isoformat(),
        "batch_end": (start + timedelta(days=1)).isoformat(),
    }


def time_parameters(now: datetime) -> dict[str, str]:
    stamp = pd.Timestamp(now)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return {"now": stamp.isoformat()}


@dataclass
class TableReference:
    """Summary of one table's accepted batches, in the order they were accepted."""

    row_counts: list[int] = field(default_factory=list)
    clicks: int = 0
    impressions: int = 0
    prices: list[np.ndarray] = field(default_factory=list)
    categories: Counter[str] = field(default_factory=Counter)

    def add(self, frame: pd.DataFrame) -> None:
        self.row_counts.append(len(frame))
        if "click" in frame:
            self.clicks += int(frame["click"].sum())
            self.impressions += len(frame)
        if "price" in frame:
            self.prices.append(frame["price"].dropna().to_numpy(dtype=float))
        if "category" in frame:
            self.categories.update(frame["category"].dropna().astype(str))

    @property
    def empty(self) -> bool:
        return not self.row_counts

    def parameters(self, config: ValidateConfig, batch_rows: int) -> dict[str, Any]:
        """Bounds for a batch of `batch_rows` rows; only those this table's columns allow."""
        parameters = self._volume(config)
        if self.impressions:
            parameters |= self._ctr(config, batch_rows)
        if self.prices:
            parameters |= self._prices(config)
        if self.categories:
            parameters |= self._categories(config, batch_rows)
        return parameters

    def _volume(self, config: ValidateConfig) -> dict[str, int]:
        median = float(np.median(self.row_counts))
        return {
            "rows_min": math.floor(median * config.volume_min_ratio),
            "rows_max": math.ceil(median * config.volume_max_ratio),
        }

    def _ctr(self, config: ValidateConfig, batch_rows: int) -> dict[str, float]:
        ctr = self.clicks / self.impressions
        # A small batch's CTR is noisy: allow `noise_sigmas` binomial standard errors on top of
        # the relative tolerance, so a tiny day does not fail for chance alone.
        noise = math.sqrt(ctr * (1.0 - ctr) / max(batch_rows, 1))
        spread = config.ctr_tolerance * ctr + config.noise_sigmas * noise
        return {"ctr_min": max(0.0, ctr - spread), "ctr_max": min(1.0, ctr + spread)}

    def _prices(self, config: ValidateConfig) -> dict[str, Any]:
        prices = np.concatenate(self.prices)
        quantiles = list(config.price_quantiles)
        factor = 1.0 + config.price_tolerance
        centres = np.quantile(prices, quantiles) if prices.size else [None] * len(quantiles)
        # No source gave a price yet: open ranges, nothing to compare with.
        ranges = [[c and float(c / factor), c and float(c * factor)] for c in centres]
        return {"price_quantile_ranges": {"quantiles": quantiles, "value_ranges": ranges}}

    def _categories(self, config: ValidateConfig, batch_rows: int) -> dict[str, Any]:
        total = sum(self.categories.values())
        values = sorted(self.categories)
        weights = [self.categories[v] / total for v in values]
        # 2n * KL is about chi-squared with k - 1 degrees of freedom when nothing changed: allow
        # `noise_sigmas` of its spread, so that a batch of a few dozen items is judged fairly.
        dof = max(len(values) - 1, 1)
        noise = (dof + config.noise_sigmas * math.sqrt(2 * dof)) / (2 * max(batch_rows, 1))
        return {
            "category_partition": {"values": values, "weights": weights},
            "category_max_kl": config.category_max_kl + noise,
        }
