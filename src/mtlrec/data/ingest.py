"""Public datasets into the raw contract.

`homedepot`: Kaggle's "Home Depot Product Search Relevance" training file (CSV, latin-1;
columns `id, product_uid, product_title, search_term, relevance`, relevance 1.0..3.0 averaged
over raters). It has items and rater judgements, no users and no impressions, so only the
relevance task can be trained on it. Category, brand and price are not in that file: they are
`unknown`/null, as the contract allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

HOMEDEPOT_COLUMNS = ("id", "product_uid", "product_title", "search_term", "relevance")
# The file carries no dates; every row is stamped with one fixed instant so reruns are identical.
HOMEDEPOT_STAMP = pd.Timestamp("2016-01-18", tz="UTC")
FORMATS = ("homedepot",)


class IngestError(ValueError):
    """The source file does not have the shape its format promises."""


@dataclass(frozen=True)
class IngestSummary:
    items: int
    judgments: int
    queries: int
    batch: str

    def __str__(self) -> str:
        return (
            f"ingested batch {self.batch}: items={self.items} judgments={self.judgments} "
            f"queries={self.queries}"
        )


def run(source: Path, fmt: str, landing: Path) -> IngestSummary:
    if fmt != "homedepot":
        raise IngestError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    raw = read_homedepot(source)
    items, judgments = homedepot_tables(raw)
    batch = HOMEDEPOT_STAMP.strftime("%Y-%m-%d")
    for table, frame in (("items", items), ("judgments", judgments)):
        folder = landing / table
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / f"{batch}.parquet", index=False)
    return IngestSummary(len(items), len(judgments), judgments["query"].nunique(), batch)


def read_homedepot(source: Path) -> pd.DataFrame:
    frame = pd.read_csv(source, encoding="latin-1")
    missing = [column for column in HOMEDEPOT_COLUMNS if column not in frame.columns]
    if missing:
        raise IngestError(f"{source}: missing columns {missing}; found {list(frame.columns)}")
    return frame


def homedepot_tables(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Items (one per product_uid) and judgements (one per query and item, grades averaged)."""
    raw = raw.assign(
        query=raw["search_term"].astype(str).str.strip(),
        title=raw["product_title"].astype(str).str.strip(),
        item_id=raw["product_uid"].astype("int64"),
    )
    raw = raw[(raw["query"] != "") & (raw["title"] != "")]
    items = raw.drop_duplicates("item_id").sort_values("item_id")
    items = pd.DataFrame(
        {
            "item_id": items["item_id"].to_numpy(),
            "title": items["title"].to_numpy(),
            "category": "unknown",
            "brand": "unknown",
            "price": pd.Series([None] * len(items), dtype="float64"),
            "created_ts": HOMEDEPOT_STAMP,
        }
    )
    judgments = (
        raw.groupby(["query", "item_id"], as_index=False, sort=True)["relevance"]
        .mean()
        .astype({"relevance": "float64"})
    )
    judgments["judged_at"] = HOMEDEPOT_STAMP
    return items, judgments[["query", "item_id", "relevance", "judged_at"]]
