"""The `simulate` source of the land stage: the synthetic shop written as landing batches.

`run` builds the shop (`mtlrec.shop`), simulates its traffic day by day, draws the clicks and
purchases and the rater judgements, and writes the raw batches under the landing folder and the
ground truth (the true probabilities of every impression, the true relevance of every judged
pair, and the fitted `Behaviour`) under the truth folder. Deterministic for a seed: the files are
written by pyarrow in a fixed row order, so the same config writes identical parquet.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mtlrec.config import SimulateConfig
from mtlrec.contract import (
    IMPRESSIONS_SCHEMA,
    ITEMS_SCHEMA,
    JUDGMENTS_SCHEMA,
    TABLES,
    TRUTH_IMPRESSIONS_SCHEMA,
    TRUTH_JUDGMENTS_SCHEMA,
    USERS_SCHEMA,
)
from mtlrec.shop import (
    Items,
    Shop,
    Traffic,
    Users,
    calibrate,
    concat_traffic,
    draw_outcomes,
    epoch_ns,
    judgment_days,
    make_judgments,
    make_shop,
    save_behaviour,
    simulate_day,
    streams,
)


@dataclass(frozen=True)
class SimulationSummary:
    """Counts of what one simulation wrote."""

    users: int
    items: int
    impressions: int
    clicks: int
    purchases: int
    judgments: int
    batches: int
    ctr: float  # clicks / impressions
    cvr: float  # purchases / clicks

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"users={self.users} items={self.items} impressions={self.impressions} "
            f"clicks={self.clicks} (ctr {self.ctr:.2%}) purchases={self.purchases} "
            f"(cvr {self.cvr:.2%}) judgments={self.judgments} batches={self.batches}"
        )


def _write(columns: dict[str, object], schema: pa.Schema, path: Path) -> None:
    # from_pandas: NaN becomes null (the feed's true_relevance).
    arrays = [pa.array(columns[f.name], type=f.type, from_pandas=True) for f in schema]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path)


def _clear(landing: Path, truth: Path) -> None:
    # Only what this stage owns: other sources may share the landing and truth folders.
    for table in TABLES:
        shutil.rmtree(landing / table, ignore_errors=True)
    for name in ("impressions.parquet", "judgments.parquet"):
        (truth / name).unlink(missing_ok=True)


def _write_catalogue(users: Users, items: Items, landing: Path, batch: str) -> None:
    user_columns = {
        "user_id": users.ids,
        "signup_ts": users.signup_ns,
        "age_bucket": users.age_bucket,
        "gender": users.gender,
        "city_tier": users.city_tier,
    }
    _write(user_columns, USERS_SCHEMA, landing / "users" / f"{batch}.parquet")
    item_columns = {
        "item_id": items.ids,
        "title": items.title,
        "category": items.category_label,
        "brand": items.brand_label,
        "price": items.price,
        "created_ts": items.created_ns,
    }
    _write(item_columns, ITEMS_SCHEMA, landing / "items" / f"{batch}.parquet")


def _impression_columns(
    traffic: Traffic, outcome: dict[str, np.ndarray], shop: Shop, dates: list[date]
) -> dict[str, np.ndarray]:
    """Landing and truth columns of every impression; ids count up within each day."""
    users, items, queries = shop.users, shop.items, shop.queries
    search = traffic.query >= 0
    counter = np.arange(len(traffic.day)) - np.searchsorted(traffic.day, traffic.day)
    stamps = [d.strftime("%Y%m%d") for d in dates]
    ids = [f"imp-{stamps[d]}-{n:06d}" for d, n in zip(traffic.day, counter, strict=True)]
    return {
        "impression_id": np.array(ids, dtype=object),
        "event_timestamp": traffic.time_ns,
        "user_id": users.ids[traffic.user],
        "item_id": items.ids[traffic.item],
        "scenario": np.where(search, "search", "feed").astype(object),
        "query": np.where(search, queries.text[np.maximum(traffic.query, 0)], None),
        "position": traffic.position,
        **outcome,
    }


def _write_impressions(
    columns: dict[str, np.ndarray], day: np.ndarray, dates: list[date], landing: Path, truth: Path
) -> None:
    for d, day_date in enumerate(dates):
        rows = day == d
        part = {name: values[rows] for name, values in columns.items()}
        _write(part, IMPRESSIONS_SCHEMA, landing / "impressions" / f"{day_date}.parquet")
    _write(columns, TRUTH_IMPRESSIONS_SCHEMA, truth / "impressions.parquet")


def _write_judgments(
    rng: np.random.Generator,
    judged: dict[str, np.ndarray],
    shop: Shop,
    dates: list[date],
    landing: Path,
    truth: Path,
) -> int:
    """Write one batch per rating round; return the number of batches."""
    items, queries = shop.items, shop.queries
    days = judgment_days(len(dates))
    # Raters work office hours on the day of their round.
    day_ns = np.array([epoch_ns(dates[d]) for d in days])[judged["round"]]
    judged_at = day_ns + (rng.uniform(8 * 3600, 18 * 3600, len(day_ns)) * 1e9).astype(np.int64)
    columns = {
        "query": queries.text[judged["query"]],
        "item_id": items.ids[judged["item"]],
        "relevance": judged["relevance"],
        "judged_at": judged_at,
        "true_relevance": judged["true"],
    }
    for r, d in enumerate(days):
        part = {name: values[judged["round"] == r] for name, values in columns.items()}
        _write(part, JUDGMENTS_SCHEMA, landing / "judgments" / f"{dates[d]}.parquet")
    _write(columns, TRUTH_JUDGMENTS_SCHEMA, truth / "judgments.parquet")
    return len(days)


def _summary(
    shop: Shop, outcome: dict[str, np.ndarray], judged: dict[str, np.ndarray], batches: int
) -> SimulationSummary:
    n_impressions = len(outcome["click"])
    clicks, purchases = int(outcome["click"].sum()), int(outcome["purchase"].sum())
    return SimulationSummary(
        users=len(shop.users.ids),
        items=len(shop.items.ids),
        impressions=n_impressions,
        clicks=clicks,
        purchases=purchases,
        judgments=len(judged["query"]),
        batches=batches,
        ctr=clicks / max(n_impressions, 1),
        cvr=purchases / max(clicks, 1),
    )


def run(config: SimulateConfig, landing: Path, truth: Path) -> SimulationSummary:
    """Simulate the shop for `config.active`; write the raw batches under `landing` and the ground
    truth under `truth`, replacing what an earlier run wrote there."""
    size, rng = config.active, streams(config.seed)
    dates = [config.start_date + timedelta(days=d) for d in range(size.n_days)]
    shop = make_shop(rng, size, config.start_date)
    days = [
        simulate_day(
            rng["traffic"], shop, d, size.impressions_per_day, config.search_share, epoch_ns(day)
        )
        for d, day in enumerate(dates)
    ]
    traffic = concat_traffic(days)
    behaviour = calibrate(traffic, shop)  # the shop's rates, fitted on its own history
    outcome = draw_outcomes(rng["outcomes"], traffic, shop, behaviour)
    judged = make_judgments(rng["judgments"], shop, size)

    _clear(landing, truth)
    save_behaviour(behaviour, truth)
    _write_catalogue(shop.users, shop.items, landing, str(config.start_date))
    columns = _impression_columns(traffic, outcome, shop, dates)
    _write_impressions(columns, traffic.day, dates, landing, truth)
    n_judgment_batches = _write_judgments(rng["judgments"], judged, shop, dates, landing, truth)
    return _summary(shop, outcome, judged, 2 + len(dates) + n_judgment_batches)
