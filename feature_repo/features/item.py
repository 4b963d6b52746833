"""Item feature views: catalogue profile, rolling popularity and the title embedding."""

from data_sources import item_popularity_source, item_profile_source, item_text_source
from entities import item
from feast import FeatureView, Field
from feast.types import Array, Float32, Float64, Int64, String
from ttls import DAILY_SNAPSHOT_TTL, PROFILE_TTL
from windows import WINDOWS_DAYS

CATEGORICAL = {"kind": "categorical"}
NUMERIC = {"kind": "numeric"}
TEXT = {"kind": "text"}
ARRAY = {"kind": "array"}

item_profile = FeatureView(
    name="item_profile",
    entities=[item],
    ttl=PROFILE_TTL,
    schema=[
        Field(name="title", dtype=String, tags=TEXT, description="Catalogue title"),
        Field(name="category", dtype=String, tags=CATEGORICAL, description="Category or unknown"),
        Field(name="brand", dtype=String, tags=CATEGORICAL, description="Brand or unknown"),
        Field(name="price", dtype=Float64, tags=NUMERIC, description="Price; null if unknown"),
        Field(
            name="price_index",
            dtype=Float64,
            tags=NUMERIC,
            description="log(price / median price of its category); null if either is unknown",
        ),
    ],
    source=item_profile_source,
    online=True,
    description="What the item is, from the catalogue.",
    tags={"owner": "recsys-data", "domain": "item"},
)

item_popularity = FeatureView(
    name="item_popularity",
    entities=[item],
    ttl=DAILY_SNAPSHOT_TTL,
    schema=[
        Field(name=f"{kind}_{days}d", dtype=dtype, tags=NUMERIC, description=text)
        for days in WINDOWS_DAYS
        for kind, dtype, text in (
            ("impressions", Int64, f"Times shown in the {days} days before the snapshot"),
            ("clicks", Int64, f"Clicks in the {days} days before the snapshot"),
            ("purchases", Int64, f"Purchases in the {days} days before the snapshot"),
            ("ctr", Float32, f"Clicks / impressions over {days} days (0 without impressions)"),
            ("cvr", Float32, f"Purchases / clicks over {days} days (0 without clicks)"),
        )
    ],
    source=item_popularity_source,
    online=True,
    description="Daily popularity snapshot; the snapshot for day D uses events before D.",
    tags={"owner": "recsys-data", "domain": "item"},
)

item_text = FeatureView(
    name="item_text",
    entities=[item],
    ttl=PROFILE_TTL,
    schema=[
        Field(
            name="title_embedding",
            dtype=Array(Float32),
            tags=ARRAY,
            description="Unit-norm sentence embedding of the title (features.title_encoder: "
            "384 floats for all-MiniLM-L6-v2)",
        ),
    ],
    source=item_text_source,
    online=True,
    description="The title encoded once, offline, so serving needs no text encoder.",
    tags={"owner": "recsys-data", "domain": "item"},
)
