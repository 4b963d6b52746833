"""The raw contract's tables, in the order they must be validated (foreign keys point backwards)."""

from __future__ import annotations

TABLES: tuple[str, ...] = ("users", "items", "impressions", "judgments")

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
