"""Feature services: one per model version, selecting exactly what that model reads.

`params.yaml` (features.feature_service) names the service a training run uses. To give the
model a new feature, add a view and a new service version here, then point params at it.
"""

from feast import FeatureService
from features.item import item_popularity, item_profile, item_text
from features.query import query_item_match
from features.user import user_activity, user_profile

mtl_v1 = FeatureService(
    name="mtl_v1",
    features=[user_profile, user_activity, item_profile, item_popularity],
    description="Multi-task model v1: user profile and activity, item profile and popularity.",
    tags={"owner": "recsys-ml", "model": "mtl"},
)

mtl_v2 = FeatureService(
    name="mtl_v2",
    features=[user_profile, user_activity, item_profile, item_popularity, query_item_match],
    description="v1 plus the request-time query/item lexical match (on-demand view).",
    tags={"owner": "recsys-ml", "model": "mtl"},
)

mtl_v3 = FeatureService(
    name="mtl_v3",
    features=[
        user_profile,
        user_activity,
        item_profile,
        item_popularity,
        query_item_match,
        item_text,
    ],
    description="v2 plus the precomputed title embedding (384 floats a row: a wide training set).",
    tags={"owner": "recsys-ml", "model": "mtl"},
)
