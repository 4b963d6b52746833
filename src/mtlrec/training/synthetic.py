"""A small synthetic table in the training-data contract, for tests and benchmarks.

It mimics what `build-dataset` writes (`{train,valid,test}.parquet` + `schema.json`, impression
and judgement rows in one table) with signal the model can learn: clicks depend on the category,
the user's taste, the position and whether the query names the item; purchases on the price;
relevance on the query-title word overlap.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

COLORS = ("red", "blue", "green", "black", "white", "grey")
NOUNS = ("shoes", "lamp", "chair", "kettle", "jacket", "drill", "mug", "desk")
CATEGORIES = ("home", "fashion", "tools", "kitchen")
SCHEMA = [
    {"name": "user_id", "kind": "id"},
    {"name": "item_id", "kind": "id"},
    {"name": "scenario", "kind": "categorical"},
    {"name": "position", "kind": "categorical"},
    {"name": "query", "kind": "text"},
    {"name": "item_profile__title", "kind": "text"},
    {"name": "item_profile__category", "kind": "categorical"},
    {"name": "user_profile__age_bucket", "kind": "categorical"},
    {"name": "item_profile__price", "kind": "numeric"},
    {"name": "user_activity__clicks_7d", "kind": "numeric"},
]
ARRAY_FEATURE = {"name": "item_profile__title_embedding", "kind": "array"}


def _items(rng: np.random.Generator, n_items: int) -> pd.DataFrame:
    color = rng.integers(len(COLORS), size=n_items)
    noun = rng.integers(len(NOUNS), size=n_items)
    return pd.DataFrame(
        {
            "item_id": np.arange(n_items, dtype=np.int64) + 1000,
            "color": color,
            "noun": noun,
            "item_profile__title": [
                f"{COLORS[c]} {NOUNS[n]}" for c, n in zip(color, noun, strict=True)
            ],
            "item_profile__category": [CATEGORIES[n % len(CATEGORIES)] for n in noun],
            "item_profile__price": np.round(rng.lognormal(3.0, 0.8, n_items), 2),
            "item_profile__title_embedding": [rng.normal(size=4).tolist() for _ in range(n_items)],
        }
    )


def _users(rng: np.random.Generator, n_users: int) -> pd.DataFrame:
    age = rng.integers(0, 7, size=n_users).astype(float)
    age[rng.random(n_users) < 0.1] = np.nan  # cold users have no profile
    clicks = rng.poisson(rng.gamma(1.0, 5.0, n_users)).astype(float)
    clicks[rng.random(n_users) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "user_id": np.arange(n_users, dtype=np.int64),
            "taste": rng.integers(len(CATEGORIES), size=n_users),
            "user_profile__age_bucket": age,
            "user_activity__clicks_7d": clicks,
        }
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _impressions(rng: np.random.Generator, n: int, users: pd.DataFrame, items: pd.DataFrame):
    rows = users.sample(n, replace=True, random_state=rng).reset_index(drop=True)
    rows = rows.join(items.sample(n, replace=True, random_state=rng).reset_index(drop=True))
    search = rng.random(n) < 0.5
    named = search & (rng.random(n) < 0.5)  # half of the searches name the shown item
    query_noun = np.where(named, rows["noun"], rng.integers(len(NOUNS), size=n))
    rows["query"] = [
        f"{NOUNS[q]} {COLORS[c]}" if s else None
        for q, c, s in zip(query_noun, rows["color"], search, strict=True)
    ]
    rows["scenario"] = np.where(search, "search", "feed")
    rows["position"] = rng.integers(1, 6, size=n).astype(np.int64)
    category_code = rows["noun"].to_numpy() % len(CATEGORIES)
    logit = -1.0 + 1.5 * (category_code == rows["taste"]) + 1.5 * named - 0.3 * rows["position"]
    category = rows["item_profile__category"]
    logit += 1.5 * (category == "tools") - 1.0 * (category == "fashion")  # easy to learn
    rows["click"] = (rng.random(n) < _sigmoid(logit.to_numpy())).astype(float)
    p_buy = _sigmoid(1.0 - 0.05 * rows["item_profile__price"].to_numpy())
    rows["purchase"] = rows["click"] * (rng.random(n) < p_buy)
    rows["relevance"] = np.nan
    rows["source"] = "impression"
    return rows


def _judgments(rng: np.random.Generator, n: int, items: pd.DataFrame) -> pd.DataFrame:
    rows = items.sample(n, replace=True, random_state=rng).reset_index(drop=True)
    noun = np.where(rng.random(n) < 0.5, rows["noun"], rng.integers(len(NOUNS), size=n))
    color = np.where(rng.random(n) < 0.5, rows["color"], rng.integers(len(COLORS), size=n))
    rows["query"] = [f"{NOUNS[q]} {COLORS[c]}" for q, c in zip(noun, color, strict=True)]
    grade = 2.0 * (noun == rows["noun"]) + 1.0 * (color == rows["color"])
    rows["relevance"] = np.clip(grade + rng.normal(0, 0.3, n), 0.0, 3.0)
    rows["user_id"] = np.int64(-1)
    rows["user_profile__age_bucket"] = np.nan
    rows["user_activity__clicks_7d"] = np.nan
    rows["scenario"], rows["position"], rows["source"] = "search", np.int64(0), "judgment"
    rows["click"] = rows["purchase"] = np.nan
    return rows


def synthetic_frame(
    n_impressions: int, n_judgments: int, seed: int = 0, n_users: int = 50, n_items: int = 40
) -> pd.DataFrame:
    """Impression and judgement rows in one table, ordered by event time."""
    rng = np.random.default_rng(seed)
    items, users = _items(rng, n_items), _users(rng, n_users)
    frame = pd.concat(
        [_impressions(rng, n_impressions, users, items), _judgments(rng, n_judgments, items)],
        ignore_index=True,
    )
    frame = frame.sample(frac=1.0, random_state=rng).reset_index(drop=True)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    frame["event_timestamp"] = start + pd.to_timedelta(np.arange(len(frame)), unit="s")
    frame["row_id"] = [f"r{i}" for i in range(len(frame))]
    columns = ["source", "row_id", "event_timestamp", "user_id", "item_id", "scenario", "query"]
    columns += ["position", "click", "purchase", "relevance"]
    features = [f["name"] for f in [*SCHEMA, ARRAY_FEATURE]]
    return frame[columns + [c for c in features if c not in columns]]


def write_synthetic_dataset(
    out_dir: Path,
    n_impressions: int = 600,
    n_judgments: int = 120,
    seed: int = 0,
    with_array: bool = False,
    **sizes: int,
) -> Path:
    """Write `train/valid/test.parquet` (70/15/15 by time) and `schema.json` into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = synthetic_frame(n_impressions, n_judgments, seed, **sizes)
    schema = [*SCHEMA, ARRAY_FEATURE] if with_array else list(SCHEMA)
    if not with_array:
        frame = frame.drop(columns=[ARRAY_FEATURE["name"]])
    cuts = [0, int(0.7 * len(frame)), int(0.85 * len(frame)), len(frame)]
    for name, lo, hi in zip(("train", "valid", "test"), cuts[:-1], cuts[1:], strict=True):
        frame.iloc[lo:hi].reset_index(drop=True).to_parquet(out_dir / f"{name}.parquet")
    (out_dir / "schema.json").write_text(json.dumps({"features": schema}, indent=2))
    return out_dir
