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

from mtlrec.errors import UserError

HOMEDEPOT_COLUMNS = ("id", "product_uid", "product_title", "search_term", "relevance")
# The file carries no dates; every row is stamped with one fixed instant so reruns are identical.
HOMEDEPOT_STAMP = pd.Timestamp("2016-01-18", tz="UTC")
FORMATS = ("homedepot",)
HOMEDEPOT_RELEVANCE = (1.0, 3.0)  # raters grade 1 (irrelevant) to 3 (exactly right)


class IngestError(UserError, ValueError):
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
    """The file as a frame, or IngestError naming what is wrong with it."""
    frame = _read_csv(Path(source))
    missing = [column for column in HOMEDEPOT_COLUMNS if column not in frame.columns]
    if missing:
        raise IngestError(f"{source}: missing columns {missing}; found {list(frame.columns)}")
    _check_numbers(source, frame, "product_uid", low=None, high=None, integer=True)
    _check_numbers(source, frame, "relevance", *HOMEDEPOT_RELEVANCE, integer=False)
    return frame


def _read_csv(source: Path) -> pd.DataFrame:
    if not source.is_file():
        raise IngestError(f"{source}: no such file")
    head = source.read_bytes()[:4096]
    if not head:
        raise IngestError(f"{source}: the file is empty")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise IngestError(f"{source}: UTF-16 (or binary) text; save it as UTF-8 or latin-1 CSV")
    try:
        return pd.read_csv(source, encoding="latin-1")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
        raise IngestError(f"{source}: not a readable CSV ({_first_line(error)})") from None


def _check_numbers(
    source: Path, frame: pd.DataFrame, column: str, low: float | None, high: float | None,
    integer: bool,
) -> None:  # fmt: skip
    """Every value of `column` a number (an integer when asked) within [low, high]."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values % 1 != 0 if integer else False)
    if low is not None and high is not None:
        bad |= (values < low) | (values > high)
    if bad.any():
        rows = frame.index[bad]
        examples = ", ".join(f"line {r + 2}: {frame.at[r, column]!r}" for r in rows[:3])
        scale = f" in {low:g}..{high:g}" if low is not None else ""
        kind = "an integer" if integer else "a number"
        raise IngestError(
            f"{source}: {column} must be {kind}{scale}; {bad.sum()} rows are not ({examples})"
        )


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


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
