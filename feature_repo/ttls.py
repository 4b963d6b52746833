"""Named TTLs: how long a feature value stays valid after its event timestamp."""

from datetime import timedelta

# Profiles change rarely; a profile row stays valid until a newer row replaces it.
PROFILE_TTL = timedelta(days=3650)
# Rolling-activity snapshots are written daily at 00:00 UTC; a snapshot older than two days
# means the featurize job stopped, and a stale count is worse than a missing one.
DAILY_SNAPSHOT_TTL = timedelta(days=2)
