"""Offline feature computation: the parquet sources behind the Feast feature views.

Profiles carry the entity's own timestamp. Rolling activity is written as daily snapshots
stamped at 00:00 UTC of day D and computed only from events strictly before D, so a
point-in-time join can never leak an impression's own outcome (or any later one) into its
features. Item titles are encoded once here (the text encoder of `mtlrec.model.text`, with its
on-disk cache, which training then reuses) and stored as an array feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mtlrec.config import FeaturesConfig, TextConfig
from mtlrec.model.text_cache import embed_texts


@dataclass(frozen=True)
class FeaturizeSummary:
    tables: dict[str, int]
    first_snapshot: str
    last_snapshot: str

    def __str__(self) -> str:
        sizes = ", ".join(f"{name}={rows}" for name, rows in self.tables.items())
        return f"features written ({sizes}); snapshots {self.first_snapshot}..{self.last_snapshot}"


# Tables a source may lack: a public relevance dataset has items and judgements only.
OPTIONAL_TABLES = ("users", "impressions")


def read_table(validated: Path, table: str) -> pd.DataFrame:
    """All validated batches of one raw table, concatenated in batch order. A missing optional
    table reads as an empty frame with the raw contract's columns and types."""
    files = sorted((validated / table).glob("*.parquet"))
    if files:
        return pd.concat([pd.read_parquet(file) for file in files], ignore_index=True)
    if table in OPTIONAL_TABLES:
        from mtlrec.contract import TABLE_SCHEMAS

        return TABLE_SCHEMAS[table].empty_table().to_pandas()
    raise FileNotFoundError(f"no validated batches under {validated / table}")


def run(config: FeaturesConfig, validated: Path, out: Path, cache: Path) -> FeaturizeSummary:
    """Write every offline table; `cache` holds the text embeddings (shared with training)."""
    users = read_table(validated, "users")
    items = read_table(validated, "items")
    impressions = read_table(validated, "impressions")
    days = snapshot_days(impressions)
    tables = {
        "user_profile": user_profile(users),
        "item_profile": item_profile(items),
        "item_text": item_text(items, TextConfig(encoder=config.title_encoder), cache),
        "user_activity": rolling_activity(impressions, "user_id", days, config.windows_days),
        "item_popularity": rolling_activity(impressions, "item_id", days, config.windows_days),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    return FeaturizeSummary(
        tables={name: len(frame) for name, frame in tables.items()},
        first_snapshot=str(days[0].date()) if len(days) else "-",
        last_snapshot=str(days[-1].date()) if len(days) else "-",
    )


def user_profile(users: pd.DataFrame) -> pd.DataFrame:
    frame = users[["user_id", "age_bucket", "gender", "city_tier"]].copy()
    frame["event_timestamp"] = _microseconds(users["signup_ts"])
    return frame.sort_values("user_id", ignore_index=True)


def item_profile(items: pd.DataFrame) -> pd.DataFrame:
    frame = items[["item_id", "title", "category", "brand", "price"]].copy()
    frame["price_index"] = price_index(frame)
    frame["event_timestamp"] = _microseconds(items["created_ts"])
    return frame.sort_values("item_id", ignore_index=True)


def price_index(items: pd.DataFrame) -> pd.Series:
    """log(price / the median price of the item's category): dear or cheap for what it is, the
    price a shopper compares (a 300 sofa is cheap, a 300 lamp is not). Null without a price or
    a known category."""
    known = items["category"].notna() & (items["category"] != "unknown")
    price = items["price"].where(items["price"] > 0)  # a zero or negative price has no log
    median = price[known].groupby(items.loc[known, "category"]).median()
    return np.log(price / items["category"].map(median).where(known))


def item_text(items: pd.DataFrame, text: TextConfig, cache: Path) -> pd.DataFrame:
    """One title embedding per item, stamped like its profile: valid from the item's creation."""
    titles = items["title"].astype(str).str.strip()
    distinct = sorted(set(titles))
    vectors = embed_texts(distinct, text, cache)  # (U, D), each distinct title encoded once
    row_of = {title: row for row, title in enumerate(distinct)}
    frame = items[["item_id"]].copy()
    frame["title_embedding"] = [vectors[row_of[title]] for title in titles]
    frame["event_timestamp"] = _microseconds(items["created_ts"])
    return frame.sort_values("item_id", ignore_index=True)


def _microseconds(stamps: pd.Series) -> pd.Series:
    # Feast keeps timestamps in microseconds; a nanosecond part is dropped with a warning on
    # every read, so drop it once here.
    return stamps.dt.floor("us")


def snapshot_days(impressions: pd.DataFrame) -> pd.DatetimeIndex:
    """One snapshot per day from the first event day to the day after the last event."""
    if impressions.empty:
        return pd.DatetimeIndex([], tz="UTC")
    first = impressions["event_timestamp"].min().floor("D")
    last = impressions["event_timestamp"].max().floor("D") + pd.Timedelta(days=1)
    return pd.date_range(first, last, freq="D", tz="UTC")


def rolling_activity(
    impressions: pd.DataFrame, key: str, days: pd.DatetimeIndex, windows: tuple[int, ...]
) -> pd.DataFrame:
    """Counts over the `w` whole days before each snapshot day, for every entity seen."""
    origin = days[0] if len(days) else pd.Timestamp(0, tz="UTC")  # no events: empty output
    day_index = ((impressions["event_timestamp"].dt.floor("D") - origin).dt.days).to_numpy()
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
