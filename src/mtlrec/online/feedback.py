"""The feedback loop: sessions a model served land as raw impressions batches.

`mtlrec log-sessions` plays `--days` days after the data on file: each day, sessions of the
shop's users get the production model's ranking (the serving ranking function, in process,
with the serving retrieval), and the shop's shoppers click and buy. Each day becomes one batch
of the raw contract, `data/feedback/impressions/<day>_served-<version>.parquet`, its file
metadata naming the version that served it. `validate` checks the feedback zone beside the
landing zone; a passing batch joins the training data at the next retraining (the
`landing_validation` DAG announces it, which triggers `mtl_retraining`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mtlrec import shop as shop_api
from mtlrec.config import OnlineTestConfig, ServeConfig, SimulateConfig, SourceConfig
from mtlrec.contract import IMPRESSIONS_SCHEMA
from mtlrec.errors import UserError
from mtlrec.names import batch_day
from mtlrec.online.sessions import Sessions, draw_sessions, play
from mtlrec.serving.ranker import Ranker, Request

SERVED_BY = b"mtlrec.served_by"  # parquet metadata key: the model version that served a batch
SESSION_GAP_S = 1.7  # seconds between two positions of one list, as in the simulated traffic


@dataclass(frozen=True)
class FeedbackPaths:
    registry: Path
    repo: Path
    index: Path
    cache: Path
    truth: Path
    landing: Path
    out: Path  # the feedback landing zone (data/feedback)


@dataclass(frozen=True)
class FeedbackSummary:
    version: str
    batches: list[str]
    impressions: int
    clicks: int
    purchases: int

    def __str__(self) -> str:
        return (
            f"{self.version} served {len(self.batches)} days: {self.impressions} impressions, "
            f"{self.clicks} clicks, {self.purchases} purchases -> {', '.join(self.batches)}"
        )


def log_sessions(
    config: OnlineTestConfig,
    serve: ServeConfig,
    simulate: SimulateConfig,
    source: SourceConfig,
    paths: FeedbackPaths,
    days: int,
    sessions_per_day: int,
) -> FeedbackSummary:
    """Serve `sessions_per_day` sessions on each of `days` days after the last day on file."""
    if source.kind != "simulate":
        raise UserError(f"source {source.kind!r} has no simulated shoppers to serve")
    from mtlrec.features.store import open_store
    from mtlrec.registry import Registry
    from mtlrec.serving.retrieval import Retriever

    shop = shop_api.build_shop(simulate)
    behaviour = shop_api.load_behaviour(paths.truth)
    if behaviour is None:
        raise UserError(f"{paths.truth}/behaviour.json is missing: rerun `mtlrec land`")
    registry = Registry(paths.registry)
    version = registry.production()
    if version is None:
        raise UserError(f"no production model in {paths.registry}: run the pipeline first")
    ranker = Ranker.load(
        registry, version, open_store(paths.repo), serve, paths.cache, Retriever(paths.index)
    )
    first = last_day([paths.landing, paths.out]) + timedelta(days=1)
    written, totals = [], np.zeros(3, dtype=np.int64)
    for offset in range(days):
        day = first + timedelta(days=offset)
        seed = config.seed * 1_000_003 + day.toordinal()  # a day's sessions: fixed by the day
        sessions = draw_sessions(shop, sessions_per_day, simulate.search_share, seed)
        table = served_day(ranker, shop, behaviour, sessions, config.k, day, seed)
        written.append(write_batch(table, paths.out, day, version))
        clicks, purchases = (int(table.column(c).to_numpy().sum()) for c in ("click", "purchase"))
        totals += [table.num_rows, clicks, purchases]
    return FeedbackSummary(version, written, *(int(t) for t in totals))


def served_day(
    ranker: Ranker,
    shop: shop_api.Shop,
    behaviour: shop_api.Behaviour,
    sessions: Sessions,
    k: int,
    day: date,
    seed: int,
) -> pa.Table:
    """One day of served sessions as an impressions table of the raw contract."""
    rng = np.random.default_rng(seed)
    bare = [
        Request(int(u), str(s), q, None, k)
        for u, s, q in zip(sessions.user_id, sessions.scenario, sessions.query_text, strict=True)
    ]
    lists = ranker.top_items(bare)
    shown = np.full((len(lists), k), -1, dtype=np.int64)
    for row, items in enumerate(lists):
        shown[row, : len(items[:k])] = items[:k]
    outcomes = play(shop, behaviour, sessions, shown, rng)
    session, slot = np.nonzero(shown >= 0)
    start = rng.uniform(0.0, 86_399.0 - k * SESSION_GAP_S, len(sessions))
    seconds = start[session] + slot * SESSION_GAP_S
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 10**9
    order = np.lexsort((slot, session, seconds))
    session, slot, seconds = session[order], slot[order], seconds[order]
    stamp = day.strftime("%Y%m%d")
    columns = {
        "impression_id": [f"srv-{stamp}-{ranker.version}-{n:06d}" for n in range(len(session))],
        "event_timestamp": midnight + np.round(seconds * 1e3).astype(np.int64) * 10**6,
        "user_id": sessions.user_id[session],
        "item_id": shown[session, slot],
        "scenario": sessions.scenario[session].astype(object),
        "query": [sessions.query_text[s] for s in session],
        "position": slot + 1,
        "click": outcomes.clicks[session, slot],
        "purchase": outcomes.purchases[session, slot],
    }
    arrays = [pa.array(columns[f.name], type=f.type) for f in IMPRESSIONS_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=IMPRESSIONS_SCHEMA)


def write_batch(table: pa.Table, out: Path, day: date, version: str) -> str:
    """`<out>/impressions/<day>_served-<version>.parquet`, its metadata naming the version."""
    batch = f"{day.isoformat()}_served-{version}"
    folder = out / "impressions"
    folder.mkdir(parents=True, exist_ok=True)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), SERVED_BY: version})
    partial = folder / f".{batch}.parquet.tmp"
    pq.write_table(table, partial)
    partial.replace(folder / f"{batch}.parquet")  # whole or not at all
    return f"impressions/{batch}"


def last_day(zones: list[Path]) -> date:
    """The last day any impressions batch of the landing or feedback zones names."""
    days = [
        date.fromisoformat(day)
        for zone in zones
        for file in sorted((zone / "impressions").glob("*.parquet"))
        if (day := batch_day(file.stem)) is not None
    ]
    if not days:
        raise UserError(f"no impressions batch in {', '.join(map(str, zones))}")
    return max(days)


def served_by(batch: Path) -> str | None:
    """The version that served a feedback batch (None for any other batch)."""
    metadata = pq.read_schema(batch).metadata or {}
    value = metadata.get(SERVED_BY)
    return value.decode() if value else None
