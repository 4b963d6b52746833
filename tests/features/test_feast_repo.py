"""What the plan counts as a change of a Feast definition (features/feast_repo.py)."""

from __future__ import annotations

from feast.protos.feast.core.DataSource_pb2 import DataSource

from mtlrec.features.feast_repo import comparable


def test_timestamps_alone_are_no_change() -> None:
    old, new = DataSource(name="items"), DataSource(name="items")
    old.meta.created_timestamp.seconds = 1
    new.meta.created_timestamp.seconds = 2
    assert comparable(old) == comparable(new)


def test_a_changed_value_of_a_map_field_is_a_change() -> None:
    """A tag's value, not only its key: map fields compare as key -> value."""
    old, new = DataSource(tags={"owner": "a"}).tags, DataSource(tags={"owner": "b"}).tags
    assert comparable(old) != comparable(new)
    assert comparable(DataSource(tags={"owner": "a"}).tags) == comparable(old)
