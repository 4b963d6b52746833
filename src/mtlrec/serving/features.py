"""A request's features from the Feast online store, through the model's feature service.

One request is one user and up to a thousand items. Feast's `get_online_features` reads every
view once per entity row (the user's views a hundred times over) and converts each value
through three generic layers: 35 ms for 100 candidates. `OnlineFeatures` reads what the same
online store holds, once per distinct entity:

- Redis (production): one pipeline per entity kind, every view of that entity at once (Feast
  keeps all of an entity's views in one hash), keys and fields made by Feast's own Redis store
  (`_generate_redis_keys_for_entities`, `_generate_hset_keys_for_features`), and each distinct
  stored value decoded once per process (decoding is a pure function of its bytes);
- any other store (SQLite locally): Feast's own `online_read` per view.

The on-demand views run the registered view's own transformation (the function training ran).
A test holds the result equal to `get_online_features`, value for value, on both stores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

QUERY_COLUMN = "query"  # the request-time input (search_request) of the on-demand views
DECODED_LIMIT = 1_000_000  # distinct stored values remembered (Redis path)


@dataclass(frozen=True)
class ViewRead:
    """One feature view of the service: which entity it hangs off and what is read."""

    view: Any  # feast.FeatureView
    prefix: str  # the name columns are prefixed with (the projection's name)
    join_key: str
    features: tuple[str, ...]


@dataclass
class FeatureRows:
    """The features of a request's rows, and which entities the store did not know."""

    frame: pd.DataFrame
    unknown: dict[str, list[int]] = field(default_factory=dict)  # join key -> unknown ids


class OnlineFeatures:
    """Reads one feature service's views for (one user, many items) requests."""

    def __init__(self, store: Any, service_name: str) -> None:
        self.store = store
        self.service = store.get_feature_service(service_name)
        self.provider = store._get_provider()  # Feast's own online-store code
        self.views: list[ViewRead] = []
        self.on_demand: list[tuple[Any, Any]] = []  # (view, projection)
        on_demand = {view.name for view in store.list_on_demand_feature_views()}
        for projection in self.service.feature_view_projections:
            if projection.name in on_demand:
                odfv = store.get_on_demand_feature_view(projection.name)
                self.on_demand.append((odfv, projection))
                continue
            view = store.get_feature_view(projection.name)
            (join_key,) = view.join_keys
            names = tuple(feature.name for feature in projection.features)
            self.views.append(ViewRead(view, projection.name_to_use(), join_key, names))
        self.columns = [
            f"{read.prefix}__{name}" for read in self.views for name in read.features
        ] + [
            f"{projection.name_to_use()}__{feature.name}"
            for _, projection in self.on_demand
            for feature in projection.features
        ]
        redis = store.config.online_store.type == "redis"
        self._redis = _RedisViews(store, self.provider, self.views) if redis else None

    def read(
        self,
        keys: dict[str, Iterable[int]],
        query: list[str | None],
        extra: dict[str, Any] | None = None,
    ) -> FeatureRows:
        """The service's columns for rows given by their join keys (`keys`: join key ->
        (N,) ids) and request-time query; `extra` columns are added to the same frame."""
        columns: dict[str, Any] = {}
        unknown: dict[str, list[int]] = {}
        for join_key in dict.fromkeys(read.join_key for read in self.views):
            ids = np.asarray(keys[join_key], dtype=np.int64)
            distinct, inverse = np.unique(ids, return_inverse=True)
            views = [read for read in self.views if read.join_key == join_key]
            found, missing = self._values(join_key, views, distinct)
            for column, values in found.items():
                columns[column] = _column(values, inverse)
            if missing:
                unknown[join_key] = missing
        for odfv, projection in self.on_demand:
            columns.update(self._on_demand(odfv, projection, columns, query))
        data = {c: columns[c] for c in self.columns} | (extra or {})
        return FeatureRows(pd.DataFrame(data, index=pd.RangeIndex(len(query))), unknown)

    def _values(
        self, join_key: str, views: list[ViewRead], ids: np.ndarray
    ) -> tuple[dict[str, list[Any]], list[int]]:
        """Each column's decoded values for the distinct ids (None when unset), and the ids
        the store holds nothing for."""
        if self._redis is not None:
            return self._redis.read(join_key, ids)
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        entity_keys = [
            EntityKey(join_keys=[join_key], entity_values=[Value(int64_val=int(i))]) for i in ids
        ]
        found: dict[str, list[Any]] = {}
        known = np.zeros(len(ids), dtype=bool)
        for read in views:
            rows = self.provider.online_read(
                self.store.config, read.view, entity_keys, list(read.features)
            )
            for name in read.features:
                found[f"{read.prefix}__{name}"] = [
                    decode(values.get(name)) if values else None for _, values in rows
                ]
            known |= [bool(values) and any(map(_is_set, values.values())) for _, values in rows]
        return found, [int(i) for i in ids[~known]]

    def _on_demand(
        self, odfv: Any, projection: Any, columns: dict[str, Any], query: list[str | None]
    ) -> dict[str, np.ndarray]:
        """The registered view's own transformation over the rows, its inputs named as Feast
        names them for the function (each source feature by its own name, and the query)."""
        inputs = pd.DataFrame(
            {
                feature.name: columns[f"{source.name_to_use()}__{feature.name}"]
                for source in odfv.source_feature_view_projections.values()
                for feature in source.features
            }
        )
        inputs[QUERY_COLUMN] = query
        result = odfv.feature_transformation.transform(inputs)
        prefix = projection.name_to_use()
        return {f"{prefix}__{f.name}": result[f.name].to_numpy() for f in projection.features}


class _RedisViews:
    """Feast's Redis layout read directly: one hash per entity, a field per (view, feature)."""

    def __init__(self, store: Any, provider: Any, views: list[ViewRead]) -> None:
        from feast.infra.online_stores.redis import _versioned_fv_name

        self.config = store.config
        self.online = provider.online_store
        self.fields: dict[str, list[tuple[str, Any]]] = {}  # join key -> (column, field)
        self.stamps: dict[str, list[Any]] = {}  # join key -> the views' timestamp fields
        for read in views:
            name = _versioned_fv_name(read.view, self.config)
            names, fields = self.online._generate_hset_keys_for_features(
                read.view, list(read.features), fv_name_override=name
            )
            columns = [f"{read.prefix}__{feature}" for feature in read.features]
            self.fields.setdefault(read.join_key, []).extend(zip(columns, fields[:-1], strict=True))
            self.stamps.setdefault(read.join_key, []).append(fields[-1])
        self.keys: dict[tuple[str, int], bytes] = {}
        self.decoded: dict[bytes, Any] = {}

    def read(self, join_key: str, ids: np.ndarray) -> tuple[dict[str, list[Any]], list[int]]:
        fields = [field for _, field in self.fields[join_key]] + self.stamps[join_key]
        client = self.online._get_client(self.config.online_store)
        with client.pipeline(transaction=False) as pipe:
            for entity in ids:
                pipe.hmget(self._key(join_key, int(entity)), fields)
            replies = pipe.execute()  # (entities, fields)
        n_stamps = len(self.stamps[join_key])
        missing = [
            int(entity)
            for entity, reply in zip(ids, replies, strict=True)
            if all(value is None for value in reply[-n_stamps:])  # no view ever written
        ]
        by_field = list(zip(*replies, strict=True)) if replies else []
        memo, decode_new = self.decoded, self._decode
        found = {
            column: [memo[raw] if raw in memo else decode_new(raw) for raw in by_field[i]]
            for i, (column, _) in enumerate(self.fields[join_key])
        }
        return found, missing

    def _key(self, join_key: str, entity: int) -> bytes:
        cached = self.keys.get((join_key, entity))
        if cached is None:
            from feast.protos.feast.types.EntityKey_pb2 import EntityKey
            from feast.protos.feast.types.Value_pb2 import Value

            key = EntityKey(join_keys=[join_key], entity_values=[Value(int64_val=entity)])
            (cached,) = self.online._generate_redis_keys_for_entities(self.config, [key])
            if len(self.keys) < DECODED_LIMIT:
                self.keys[(join_key, entity)] = cached
        return cached

    def _decode(self, raw: bytes | None) -> Any:
        if not raw:
            return None
        if raw in self.decoded:
            return self.decoded[raw]
        from feast.protos.feast.types.Value_pb2 import Value

        value = decode(Value.FromString(raw))
        if len(self.decoded) < DECODED_LIMIT:
            self.decoded[raw] = value
        return value


def _is_set(value: Any) -> bool:
    return value.WhichOneof("val") not in (None, "null_val")


def decode(value: Any) -> Any:
    """A Feast ValueProto as the Python value `get_online_features` gives (None when unset)."""
    if value is None:
        return None
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    decoded = getattr(value, kind)
    if kind.endswith("_list_val"):
        return list(decoded.val)
    return decoded


def _column(values: list[Any], inverse: np.ndarray) -> list[Any] | np.ndarray:
    """The distinct entities' values spread over the request's rows: numbers as a float array
    (NaN where unset), anything else as a list."""
    kinds = {type(value) for value in values}
    if kinds <= {int, float, type(None)} and kinds - {type(None)}:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)[inverse]
    return [values[i] for i in inverse]
