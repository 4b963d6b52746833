"""Offline sources: the parquet tables `mtlrec featurize` writes under data/features/."""

import os
from pathlib import Path

from feast import Field, FileSource, RequestSource
from feast.data_format import ParquetFormat
from feast.types import String

# Absolute on purpose: Feast's DuckDB offline store reads a relative FileSource path from the
# process's working directory, not from the feature repo (the file store resolves it against
# the repo), so a relative path breaks as soon as Feast is called from another folder.
FEATURES_DIR = Path(
    os.environ.get(
        "MTLREC_FEATURES_DIR", Path(__file__).resolve().parent.parent / "data" / "features"
    )
)


def _parquet(name: str, timestamp_field: str) -> FileSource:
    return FileSource(
        name=name,
        path=f"{FEATURES_DIR}/{name}.parquet",
        file_format=ParquetFormat(),
        timestamp_field=timestamp_field,
        description=f"data/features/{name}.parquet, written by `mtlrec featurize`",
        tags={"owner": "recsys-data"},
    )


user_profile_source = _parquet("user_profile", "event_timestamp")
item_profile_source = _parquet("item_profile", "event_timestamp")
user_activity_source = _parquet("user_activity", "event_timestamp")
item_popularity_source = _parquet("item_popularity", "event_timestamp")
item_text_source = _parquet("item_text", "event_timestamp")

# What the caller sends with a request rather than what the store holds: the search query.
# Training passes it as a column of the entity dataframe, serving in the request's entity rows.
search_request = RequestSource(
    name="search_request",
    schema=[Field(name="query", dtype=String, description="Search query; null in the feed")],
    description="Request-time context of a search impression.",
    tags={"owner": "recsys-data"},
)
