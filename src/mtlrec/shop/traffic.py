"""Traffic: requests, the production rankers' lists, and when each item was shown."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtlrec.shop.catalog import CATALOG
from mtlrec.shop.world import Items, Queries, Shop, Users

MAX_LIST_LENGTH = 30


# Requests per hour of the day (UTC): quiet at night, a peak in the evening.
# fmt: off
HOURLY_TRAFFIC = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 3.5,
                            4, 3.5, 3.5, 3.5, 4, 4.5, 5, 6, 6.5, 6, 4, 2])
# fmt: on


@dataclass(frozen=True)
class Traffic:
    """All impressions of the simulation, one row each, in time order within each day."""

    day: np.ndarray  # (N,)
    time_ns: np.ndarray  # (N,) ns since epoch
    user: np.ndarray  # (N,) index into users
    item: np.ndarray  # (N,) index into items
    query: np.ndarray  # (N,) index into queries, -1 in the feed
    position: np.ndarray  # (N,) 1-based


def list_lengths(rng: np.random.Generator, total: int, n_items: int) -> np.ndarray:
    """How deep each request scrolls, so that the lengths add up to exactly `total`."""
    lengths = np.minimum(rng.geometric(0.12, size=total), min(MAX_LIST_LENGTH, n_items))
    cumulative = np.cumsum(lengths)
    n_requests = int(np.searchsorted(cumulative, total)) + 1
    lengths = lengths[:n_requests]
    lengths[-1] -= cumulative[n_requests - 1] - total
    return lengths


def _request_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    hour = rng.choice(24, size=n, p=HOURLY_TRAFFIC / HOURLY_TRAFFIC.sum())
    return hour * 3600.0 + rng.uniform(0.0, 3600.0, size=n)


def pick_queries(rng: np.random.Generator, preference: np.ndarray, queries: Queries) -> np.ndarray:
    """A query per search request: a category from the user's taste, then a query in it."""
    offered = np.isin(np.arange(len(CATALOG)), queries.category)
    # People also search outside their favourite categories, but never for what is not sold.
    taste = np.log(0.7 * preference + 0.3 / len(CATALOG))  # (R, C)
    taste[:, ~offered] = -np.inf
    category = np.argmax(taste + rng.gumbel(size=taste.shape), axis=1)  # Gumbel-max
    picked = np.empty(len(category), dtype=np.int64)
    for c in np.flatnonzero(offered):
        rows, pool = np.flatnonzero(category == c), np.flatnonzero(queries.category == c)
        weights = queries.popularity[pool]
        picked[rows] = rng.choice(pool, size=len(rows), p=weights / weights.sum())
    return picked


def top_k(scores: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank each row's columns by score; keep the first `lengths[r]`: (row, column, position)."""
    if len(lengths) == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    k = int(lengths.max())
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (R, k) unordered
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)  # (R, k) best first
    position = np.broadcast_to(np.arange(1, k + 1), top.shape)
    keep = position <= lengths[:, None]
    rows = np.broadcast_to(np.arange(len(lengths))[:, None], top.shape)
    return rows[keep], top[keep], position[keep]


def _explore(rng: np.random.Generator, shape: tuple[int, int], spread: float) -> np.ndarray:
    # About 1.5 random items per list get a random boost: the off-target items that real rankers
    # show too, which let a model see what bad matches look like.
    chosen = rng.random(shape) < 1.5 / shape[1]
    return np.where(chosen, rng.uniform(0.0, spread, shape), 0.0)


def _search_scores(
    rng: np.random.Generator, query: np.ndarray, items: Items, relevance: np.ndarray
) -> np.ndarray:
    """(R, I) scores of the production search ranker: noisy relevance plus a little quality."""
    shape = (len(query), len(items.ids))
    noise = rng.normal(0.0, 0.35, shape)
    return relevance[query] + 0.15 * items.quality + noise + _explore(rng, shape, 3.5)


def _feed_scores(
    rng: np.random.Generator, user: np.ndarray, users: Users, items: Items
) -> np.ndarray:
    """(R, I) scores of the feed recommender: the user's category taste plus popularity."""
    shape = (len(user), len(items.ids))
    taste = np.log(users.preference[user][:, items.category])  # (R, I)
    noise = rng.gumbel(size=shape)
    return 1.2 * taste + 0.5 * np.log(items.popularity) + noise + _explore(rng, shape, 6.0)


def simulate_day(
    rng: np.random.Generator, shop: Shop, day: int, n: int, search_share: float, day_ns: int
) -> Traffic:
    """One day of `n` impressions: requests, their ranked lists, and when each item was shown."""
    users, items, queries, relevance = shop.users, shop.items, shop.queries, shop.relevance
    lengths = list_lengths(rng, n, len(items.ids))
    user = rng.choice(len(users.ids), size=len(lengths), p=users.activity)
    search = rng.random(len(lengths)) < search_share
    seconds = _request_seconds(rng, len(lengths))
    query = np.full(len(lengths), -1, dtype=np.int64)
    query[search] = pick_queries(rng, users.preference[user[search]], queries)
    scores = _search_scores(rng, query[search], items, relevance)
    s_rows, s_items, s_pos = top_k(scores, lengths[search])
    f_rows, f_items, f_pos = top_k(_feed_scores(rng, user[~search], users, items), lengths[~search])
    request = np.concatenate([np.flatnonzero(search)[s_rows], np.flatnonzero(~search)[f_rows]])
    position = np.concatenate([s_pos, f_pos])
    # Later positions are seen a moment later; the jitter keeps timestamps distinct.
    offset = (position - 1) * 1.7 + rng.uniform(0.0, 1.0, len(position))
    time_s = np.minimum(seconds[request] + offset, 86_399.999)
    order = np.lexsort((position, request, time_s))
    return Traffic(
        day=np.full(n, day, dtype=np.int64),
        time_ns=day_ns + np.round(time_s[order] * 1e3).astype(np.int64) * 10**6,
        user=user[request][order],
        item=np.concatenate([s_items, f_items])[order],
        query=query[request][order],
        position=position[order].astype(np.int64),
    )


def concat_traffic(days: list[Traffic]) -> Traffic:
    fields = Traffic.__dataclass_fields__
    return Traffic(**{f: np.concatenate([getattr(d, f) for d in days]) for f in fields})
