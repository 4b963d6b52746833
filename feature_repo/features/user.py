"""User feature views: profile and rolling activity."""

from data_sources import user_activity_source, user_profile_source
from entities import user
from feast import FeatureView, Field
from feast.types import Float32, Int64, String
from ttls import DAILY_SNAPSHOT_TTL, PROFILE_TTL
from windows import WINDOWS_DAYS

# `kind` tags tell the model how to read a column: id, categorical, numeric, text or array.
CATEGORICAL = {"kind": "categorical"}
NUMERIC = {"kind": "numeric"}

user_profile = FeatureView(
    name="user_profile",
    entities=[user],
    ttl=PROFILE_TTL,
    schema=[
        Field(name="age_bucket", dtype=Int64, tags=CATEGORICAL, description="Age band 0..6"),
        Field(name="gender", dtype=String, tags=CATEGORICAL, description="F, M or U"),
        Field(name="city_tier", dtype=Int64, tags=CATEGORICAL, description="City tier 1..5"),
    ],
    source=user_profile_source,
    online=True,
    description="Who the user is, as of signup.",
    tags={"owner": "recsys-data", "domain": "user"},
)

user_activity = FeatureView(
    name="user_activity",
    entities=[user],
    ttl=DAILY_SNAPSHOT_TTL,
    schema=[
        Field(name=f"{kind}_{days}d", dtype=dtype, tags=NUMERIC, description=text)
        for days in WINDOWS_DAYS
        for kind, dtype, text in (
            ("impressions", Int64, f"Impressions shown in the {days} days before the snapshot"),
            ("clicks", Int64, f"Clicks in the {days} days before the snapshot"),
            ("purchases", Int64, f"Purchases in the {days} days before the snapshot"),
            ("ctr", Float32, f"Clicks / impressions over {days} days (0 without impressions)"),
        )
    ],
    source=user_activity_source,
    online=True,
    description="Daily activity snapshot; the snapshot for day D uses events before D.",
    tags={"owner": "recsys-data", "domain": "user"},
)
