"""Candidates for a request that names none: the first stage of a two-stage ranker.

- Search: the items whose title embeddings (the `item_text` view, all-MiniLM-L6-v2) are nearest
  to the query's embedding by cosine, from a faiss index (exact inner product over unit vectors:
  a catalogue of thousands fits; an IVF or HNSW index slots in for millions).
- Feed: the most clicked items (last 7 days) of the user's top categories (their clicks over the
  last 30 days), then the most clicked items overall; a user with no clicks gets the latter.

`mtlrec index` builds both from the feature store and the validated impressions into
`data/index/`; the service and the online test load them with `Retriever.load`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mtlrec.config import FeaturesConfig, ServeConfig, TextConfig
from mtlrec.model.text_cache import embed_texts

INDEX_FILE = "items.faiss"
ITEMS_FILE = "item_ids.npy"
POPULAR_FILE = "popular.parquet"
USER_CATEGORIES_FILE = "user_categories.parquet"
META_FILE = "meta.json"
POPULAR_DAYS = 7
TASTE_DAYS = 30
RELEVANT = 2.0  # a true relevance of at least this counts as relevant for recall


@dataclass(frozen=True)
class IndexSummary:
    items: int
    users: int
    recall: float | None
    queries: int
    k: int

    def __str__(self) -> str:
        recall = "no ground truth" if self.recall is None else f"{self.recall:.4f}"
        return (
            f"index of {self.items} titles, feed candidates for {self.users} users; "
            f"recall@{self.k} over {self.queries} judged queries: {recall}"
        )


class Retriever:
    """The search index and the feed candidates, loaded once per process."""

    def __init__(self, folder: Path) -> None:
        import faiss

        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        self.text = TextConfig(encoder=meta["encoder"], max_length=meta["max_length"])
        self.index = faiss.read_index(str(folder / INDEX_FILE))
        self.item_ids = np.load(folder / ITEMS_FILE)
        popular = pd.read_parquet(folder / POPULAR_FILE)
        self.popular = popular["item_id"].to_numpy()
        self.by_category = {
            category: rows["item_id"].to_numpy() for category, rows in popular.groupby("category")
        }
        tastes = pd.read_parquet(folder / USER_CATEGORIES_FILE)
        self.tastes = {
            int(user): rows["category"].tolist() for user, rows in tastes.groupby("user_id")
        }

    def search(self, query: str, k: int, cache_dir: Path) -> np.ndarray:
        """The `k` items whose titles are nearest to the query, nearest first."""
        return self.search_many([query], k, cache_dir)[0]

    def search_many(self, queries: list[str], k: int, cache_dir: Path) -> list[np.ndarray]:
        vectors = embed_texts(queries, self.text, cache_dir)  # (Q, D), unit norm
        _, rows = self.index.search(vectors, min(k, len(self.item_ids)))  # (Q, k)
        return [self.item_ids[row[row >= 0]] for row in rows]

    def feed(self, user_id: int, k: int, n_categories: int) -> np.ndarray:
        """Up to `k` items: the user's top categories' most clicked items, then popular ones."""
        categories = self.tastes.get(int(user_id), [])[:n_categories]
        share = -(-k // (n_categories + 1))  # each category and the popular list a share
        picked = [self.by_category.get(c, np.empty(0, np.int64))[:share] for c in categories]
        merged = pd.unique(np.concatenate([*picked, self.popular]))
        return merged[:k]


def build(
    features: FeaturesConfig,
    serve: ServeConfig,
    repo: Path,
    validated: Path,
    out: Path,
    truth: Path | None,
    metrics: Path | None,
    cache_dir: Path,
) -> IndexSummary:
    """The `index` stage: write the faiss index and the feed tables; recall@k (k: the
    candidates retrieved per request) on the judged queries of the ground truth, if any."""
    import faiss

    from mtlrec.features.featurize import read_table
    from mtlrec.features.store import open_store

    k = serve.retrieve
    store = open_store(Path(repo))
    items, vectors = title_embeddings(store)
    text = TextConfig(encoder=features.title_encoder)  # what embedded the item_text titles
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(out / INDEX_FILE))
    np.save(out / ITEMS_FILE, items)
    impressions = read_table(validated, "impressions")
    catalogue = read_table(validated, "items")[["item_id", "category"]]
    popular, tastes = feed_tables(impressions, catalogue)
    popular.to_parquet(out / POPULAR_FILE, index=False)
    tastes.to_parquet(out / USER_CATEGORIES_FILE, index=False)
    meta = {"encoder": text.encoder, "max_length": text.max_length, "items": len(items)}
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    recall, queries = judged_recall(Retriever(out), truth, k, cache_dir)
    summary = IndexSummary(len(items), tastes["user_id"].nunique(), recall, queries, k)
    if metrics is not None:
        metrics.parent.mkdir(parents=True, exist_ok=True)
        report = {"recall": {f"at_{k}": recall, "queries": queries, "relevant_at_least": RELEVANT}}
        metrics.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return summary


def title_embeddings(store: object) -> tuple[np.ndarray, np.ndarray]:
    """Every item's latest title embedding from the `item_text` view's offline source."""
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

    view = store.get_feature_view("item_text")
    offline = get_offline_store_from_config(store.config.offline_store)
    source = view.batch_source
    table = offline.pull_latest_from_table_or_query(
        config=store.config,
        data_source=source,
        join_key_columns=view.join_keys,
        feature_name_columns=["title_embedding"],
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column or None,
        start_date=datetime(1970, 1, 1, tzinfo=UTC),
        end_date=datetime.now(UTC),
    ).to_df()
    table = table.sort_values("item_id", ignore_index=True)
    vectors = np.stack(table["title_embedding"].to_numpy()).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return table["item_id"].to_numpy(np.int64), vectors


def feed_tables(
    impressions: pd.DataFrame, items: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(item_id, category, clicks) most clicked first over the last POPULAR_DAYS, and
    (user_id, category, clicks) each user's categories by clicks over the last TASTE_DAYS."""
    clicks = impressions.loc[impressions["click"] == 1, ["event_timestamp", "user_id", "item_id"]]
    clicks = clicks.merge(items, on="item_id", how="left")
    last = impressions["event_timestamp"].max() if len(impressions) else pd.Timestamp.now(UTC)
    recent = clicks[clicks["event_timestamp"] > last - pd.Timedelta(days=POPULAR_DAYS)]
    popular = items.merge(
        recent.groupby("item_id").size().rename("clicks").reset_index(), how="left"
    ).fillna({"clicks": 0})
    popular = popular.sort_values(["clicks", "item_id"], ascending=[False, True])
    taste = clicks[clicks["event_timestamp"] > last - pd.Timedelta(days=TASTE_DAYS)]
    tastes = taste.groupby(["user_id", "category"]).size().rename("clicks").reset_index()
    tastes = tastes.sort_values(["user_id", "clicks", "category"], ascending=[True, False, True])
    return (
        popular.astype({"clicks": "int64"}).reset_index(drop=True),
        tastes.reset_index(drop=True),
    )


def judged_recall(
    retriever: Retriever, truth: Path | None, k: int, cache_dir: Path
) -> tuple[float | None, int]:
    """Mean over the judged queries of the share of their truly relevant judged items that the
    search retrieves in its top k (judged pairs only: the truth of the others is not on file)."""
    file = None if truth is None else Path(truth) / "judgments.parquet"
    if file is None or not file.is_file():
        return None, 0
    judged = pd.read_parquet(file, columns=["query", "item_id", "true_relevance"])
    relevant = judged[judged["true_relevance"] >= RELEVANT].groupby("query")["item_id"]
    wanted = {str(query): set(items.tolist()) for query, items in relevant}
    found = retriever.search_many(list(wanted), k, cache_dir)
    pairs = zip(wanted.values(), found, strict=True)
    shares = [len(relevant & set(hits.tolist())) / len(relevant) for relevant, hits in pairs]
    return (float(np.mean(shares)) if shares else None), len(shares)
