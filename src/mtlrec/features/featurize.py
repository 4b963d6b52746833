"""Offline feature computation: the parquet sources behind the Feast feature views.

Profiles carry the entity's own timestamp. Rolling activity is written as daily snapshots
stamped at 00:00 UTC of day D and computed only from events strictly before D, so a
point-in-time join can never leak an impression's own outcome (or any later one) into its
features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mtlrec.config import FeaturesConfig


@dataclass(frozen=True)
class FeaturizeSummary:
    tables: dict[str, int]
    first_snapshot: str
    last_snapshot: str

    def __str__(self) -> str:
        sizes = ", ".join(f"{name}={rows}" for name, rows in self.tables.items())
        return f"features written ({sizes}); snapshots {self.first_snapshot}..{self.last_snapshot}"


def read_table(validated: Path, table: str) -> pd.DataFrame:
    """All validated batches of one raw table, concatenated in batch order."""
    files = sorted((validated / table).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no validated batches under {validated / table}")
    return pd.concat([pd.read_parquet(file) for file in files], ignore_index=True)


def run(config: FeaturesConfig, validated: Path, out: Path) -> FeaturizeSummary:
    users = read_table(validated, "users")
    items = read_table(validated, "items")
    impressions = read_table(validated, "impressions")
    days = snapshot_days(impressions)
    tables = {
        "user_profile": user_profile(users),
        "item_profile": item_profile(items),
        "user_activity": rolling_activity(impressions, "user_id", days, config.windows_days),
        "item_popularity": rolling_activity(impressions, "item_id", days, config.windows_days),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    return FeaturizeSummary(
        tables={name: len(frame) for name, frame in tables.items()},
        first_snapshot=str(days[0].date()),
        last_snapshot=str(days[-1].date()),
    )


def user_profile(users: pd.DataFrame) -> pd.DataFrame:
    frame = users[["user_id", "age_bucket", "gender", "city_tier"]].copy()
    frame["event_timestamp"] = users["signup_ts"]
    return frame.sort_values("user_id", ignore_index=True)


def item_profile(items: pd.DataFrame) -> pd.DataFrame:
    frame = items[["item_id", "title", "category", "brand", "price"]].copy()
    frame["event_timestamp"] = items["created_ts"]
    return frame.sort_values("item_id", ignore_index=True)


def snapshot_days(impressions: pd.DataFrame) -> pd.DatetimeIndex:
    """One snapshot per day from the first event day to the day after the last event."""
    first = impressions["event_timestamp"].min().floor("D")
    last = impressions["event_timestamp"].max().floor("D") + pd.Timedelta(days=1)
    return pd.date_range(first, last, freq="D", tz="UTC")


def rolling_activity(
    impressions: pd.DataFrame, key: str, days: pd.DatetimeIndex, windows: tuple[int, ...]
) -> pd.DataFrame:
    """Counts over the `w` whole days before each snapshot day, for every entity seen."""
    day_index = ((impressions["event_timestamp"].dt.floor("D") - days[0]).dt.days).to_numpy()
    entities, entity_index = np.unique(impressions[key].to_numpy(), return_inverse=True)
    shape = (len(entities), len(days))
    counts = {}
    for name, weights in (
        ("impressions", np.ones(len(impressions))),
        ("clicks", impressions["click"].to_numpy(dtype=float)),
        ("purchases", impressions["purchase"].to_numpy(dtype=float)),
    ):
        daily = np.zeros(shape)
        np.add.at(daily, (entity_index, day_index), weights)
        # cumulative[:, d] = events on days < d, so a window is a difference of two columns.
        counts[name] = np.concatenate([np.zeros((shape[0], 1)), daily.cumsum(axis=1)], axis=1)
    columns: dict[str, np.ndarray] = {
        key: np.repeat(entities, len(days)),
        "event_timestamp": np.tile(days.to_numpy(), len(entities)),
    }
    for window in windows:
        columns.update(_window_columns(counts, window, len(days)))
    frame = pd.DataFrame(columns)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


def _window_columns(counts: dict[str, np.ndarray], window: int, n_days: int) -> dict:
    end = np.arange(n_days)
    start = np.maximum(end - window, 0)
    sums = {name: (cum[:, end] - cum[:, start]).ravel() for name, cum in counts.items()}
    impressions, clicks, purchases = sums["impressions"], sums["clicks"], sums["purchases"]
    return {
        f"impressions_{window}d": impressions.astype("int64"),
        f"clicks_{window}d": clicks.astype("int64"),
        f"purchases_{window}d": purchases.astype("int64"),
        f"ctr_{window}d": (clicks / np.maximum(impressions, 1)).astype("float32"),
        f"cvr_{window}d": (purchases / np.maximum(clicks, 1)).astype("float32"),
    }
