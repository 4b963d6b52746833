"""Feast online stores: materialization rows/s and online retrieval latency, SQLite vs Redis.

Two views shaped like the repo's: `activity` (12 numbers per user, as user_activity) and
`title` (a 384-float embedding per item, as item_text), over synthetic parquet tables in a
temporary folder. For each backend: `materialize` each view (rows written per second), then
`get_online_features` for 100 random entities per request (latency p50/p99 over the
requests, after a warm-up). The registry is a file for both, so only the online store differs;
the Redis run uses its own project name and deletes its keys afterwards.

    .venv/bin/python benchmarks/bench_feast.py [--entities 100000] [--embedding-entities 20000]
        [--requests 300] [--backends sqlite redis] [--redis 127.0.0.1:6379]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

BATCH = 100  # entities per online request
WARMUP = 20
EMBEDDING_DIM = 384
SNAPSHOT = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Result:
    backend: str
    view: str
    rows: int
    materialize_s: float
    p50_ms: float
    p99_ms: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.materialize_s


def write_tables(folder: Path, entities: int, embedding_entities: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    activity = pd.DataFrame({"user_id": np.arange(entities, dtype=np.int64)})
    for days in (1, 7, 30):
        for name in ("impressions", "clicks", "purchases"):
            activity[f"{name}_{days}d"] = rng.poisson(days * 3, entities).astype(np.int64)
        activity[f"ctr_{days}d"] = rng.random(entities, dtype=np.float32)
    activity["event_timestamp"] = SNAPSHOT
    activity.to_parquet(folder / "activity.parquet", index=False)
    vectors = rng.standard_normal((embedding_entities, EMBEDDING_DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    title = pd.DataFrame({"item_id": np.arange(embedding_entities, dtype=np.int64)})
    title["title_embedding"] = list(vectors)
    title["event_timestamp"] = SNAPSHOT
    title.to_parquet(folder / "title.parquet", index=False)


def definitions(folder: Path) -> list:
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Array, Float32, Int64

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64)
    counts = [
        Field(name=f"{name}_{days}d", dtype=Int64)
        for days in (1, 7, 30)
        for name in ("impressions", "clicks", "purchases")
    ]
    rates = [Field(name=f"ctr_{days}d", dtype=Float32) for days in (1, 7, 30)]
    activity = FeatureView(
        name="activity",
        entities=[user],
        ttl=timedelta(days=3650),
        schema=counts + rates,
        source=FileSource(path=str(folder / "activity.parquet"), timestamp_field="event_timestamp"),
    )
    title = FeatureView(
        name="title",
        entities=[item],
        ttl=timedelta(days=3650),
        schema=[Field(name="title_embedding", dtype=Array(Float32))],
        source=FileSource(path=str(folder / "title.parquet"), timestamp_field="event_timestamp"),
    )
    return [user, item, activity, title]


def open_store(folder: Path, backend: str, redis_url: str, project: str):
    from feast import FeatureStore, RepoConfig

    online = (
        {"type": "sqlite", "path": str(folder / "online.db")}
        if backend == "sqlite"
        else {"type": "redis", "connection_string": redis_url}
    )
    config = RepoConfig(
        project=project,
        provider="local",
        registry=str(folder / f"registry_{backend}.db"),
        offline_store={"type": "duckdb"},
        online_store=online,
        entity_key_serialization_version=3,
        repo_path=folder,
    )
    return FeatureStore(config=config)


def online_latencies(store, view, key: str, entities: int, requests: int) -> np.ndarray:
    """Seconds per get_online_features call for BATCH random entities, after a warm-up."""
    rng = np.random.default_rng(1)
    features = [f"{view.name}:{field.name}" for field in view.features]
    seconds = []
    for number in range(WARMUP + requests):
        keys = rng.choice(entities, size=BATCH, replace=False)
        rows = [{key: int(value)} for value in keys]
        started = time.perf_counter()
        served = store.get_online_features(features=features, entity_rows=rows).to_dict()
        elapsed = time.perf_counter() - started
        assert served[features[0].split(":")[1]][0] is not None, "entity missing online"
        if number >= WARMUP:
            seconds.append(elapsed)
    return np.array(seconds)


def bench_backend(folder: Path, backend: str, args: argparse.Namespace) -> list[Result]:
    project = f"bench_{uuid.uuid4().hex[:8]}"
    store = open_store(folder, backend, args.redis, project)
    objects = definitions(folder)
    store.apply(objects)
    results = []
    try:
        for view, key, entities in (
            (objects[2], "user_id", args.entities),
            (objects[3], "item_id", args.embedding_entities),
        ):
            started = time.perf_counter()
            store.materialize(
                start_date=SNAPSHOT - timedelta(days=1),
                end_date=SNAPSHOT + timedelta(days=1),
                feature_views=[view.name],
            )
            seconds = time.perf_counter() - started
            latency = online_latencies(store, view, key, entities, args.requests) * 1000
            results.append(
                Result(
                    backend,
                    view.name,
                    entities,
                    seconds,
                    float(np.percentile(latency, 50)),
                    float(np.percentile(latency, 99)),
                )
            )
    finally:
        if backend == "redis":
            store.teardown()  # the benchmark's keys go; nobody else's
    return results


def table(results: list[Result]) -> str:
    lines = [
        f"{'backend':<8} {'view':<10} {'rows':>8} {'materialize':>12} {'rows/s':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8}",
    ]
    for r in results:
        lines.append(
            f"{r.backend:<8} {r.view:<10} {r.rows:>8,} {r.materialize_s:>10.2f} s "
            f"{r.rows_per_s:>9,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--embedding-entities", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "redis"])
    parser.add_argument("--redis", default="127.0.0.1:6379")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_feast_") as tmp:
        folder = Path(tmp)
        write_tables(folder, args.entities, args.embedding_entities)
        for backend in args.backends:
            results += bench_backend(folder, backend, args)
    print(f"{BATCH} entities per online request, {args.requests} requests after {WARMUP} warm-up")
    print(table(results))


if __name__ == "__main__":
    main()
