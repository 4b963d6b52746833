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
