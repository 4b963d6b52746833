"""Feature services: one per model version, selecting exactly what that model reads.

`params.yaml` (features.feature_service) names the service a training run uses. To give the
model a new feature, add a view and a new service version here, then point params at it.
"""

from feast import FeatureService
from features.item import item_popularity, item_profile
from features.user import user_activity, user_profile

mtl_v1 = FeatureService(
    name="mtl_v1",
    features=[user_profile, user_activity, item_profile, item_popularity],
    description="Multi-task model v1: user profile and activity, item profile and popularity.",
    tags={"owner": "recsys-ml", "model": "mtl"},
)
