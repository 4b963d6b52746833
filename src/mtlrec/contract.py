"""The raw contract: the tables every source must produce, their columns and types.

A source (the simulator, an ingested public dataset) writes daily batches of these tables into
the landing zone; validation checks every batch against the contract's suites before anything
downstream reads it. The simulator also writes the ground truth (never a feature) in the
`TRUTH_*` layouts. See the raw contract in DESIGN.md for the rules beyond the columns.
"""

from __future__ import annotations

import pyarrow as pa

# In the order they are validated: foreign keys point backwards.
TABLES: tuple[str, ...] = ("users", "items", "impressions", "judgments")


_TS = pa.timestamp("ns", tz="UTC")


USERS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("signup_ts", _TS),
        ("age_bucket", pa.int64()),
        ("gender", pa.string()),
        ("city_tier", pa.int64()),
    ]
)


ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.int64()),
        ("title", pa.string()),
        ("category", pa.string()),
        ("brand", pa.string()),
        ("price", pa.float64()),
        ("created_ts", _TS),
    ]
)


IMPRESSIONS_SCHEMA = pa.schema(
    [
        ("impression_id", pa.string()),
        ("event_timestamp", _TS),
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("scenario", pa.string()),
        ("query", pa.string()),
        ("position", pa.int64()),
        ("click", pa.int64()),
        ("purchase", pa.int64()),
    ]
)


JUDGMENTS_SCHEMA = pa.schema(
    [
        ("query", pa.string()),
        ("item_id", pa.int64()),
        ("relevance", pa.float64()),
        ("judged_at", _TS),
    ]
)


TABLE_SCHEMAS = {
    "users": USERS_SCHEMA,
    "items": ITEMS_SCHEMA,
    "impressions": IMPRESSIONS_SCHEMA,
    "judgments": JUDGMENTS_SCHEMA,
}


TRUTH_IMPRESSIONS_SCHEMA = pa.schema(
    [
        ("impression_id", pa.string()),
        ("p_click", pa.float64()),
        ("p_purchase_given_click", pa.float64()),
        ("true_relevance", pa.float64()),
    ]
)


TRUTH_JUDGMENTS_SCHEMA = pa.schema(
    [("query", pa.string()), ("item_id", pa.int64()), ("true_relevance", pa.float64())]
)


# The columns that identify a row: shown beside every offending value so a person can find it.
ROW_KEYS: dict[str, list[str]] = {
    "users": ["user_id"],
    "items": ["item_id"],
    "impressions": ["impression_id"],
    "judgments": ["query", "item_id"],
}

# The key each table adds to the run's known keys: the targets of the referential-integrity
# expectations (suite parameters `known_<key>s`, e.g. `known_user_ids`).
PRIMARY_KEYS: dict[str, str] = {
    "users": "user_id",
    "items": "item_id",
    "impressions": "impression_id",
}

# GX reports an offending row by this named index: its row number in the landing file. Key
# columns could be null or duplicated in a bad batch; the file row never is.
ROW_INDEX = "file_row"
