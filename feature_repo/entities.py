"""Entities: the join keys that feature views hang off."""

from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.INT64,
    description="A shopper. Judgement rows carry user_id -1, which matches no user.",
    tags={"owner": "recsys-data"},
)

item = Entity(
    name="item",
    join_keys=["item_id"],
    value_type=ValueType.INT64,
    description="A catalogue item.",
    tags={"owner": "recsys-data"},
)
