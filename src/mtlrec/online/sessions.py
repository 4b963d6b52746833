"""Sessions of the shop's own users, and its shoppers' clicks and purchases on what is shown.

A session is a user (drawn by activity, as the simulated traffic draws them), a scenario (search
with the shop's `search_share`) and, for a search, a query picked from the user's taste as the
simulator picks them. The shopper model is the simulator's own: the click and purchase
probabilities of `mtlrec.shop.outcome_probabilities` at each shown position (position bias
included), with the intercepts fitted on the simulated history (`Behaviour`), so a ranking is
played against exactly the behaviour the training data came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtlrec import shop as shop_api


@dataclass(frozen=True)
class Sessions:
    user: np.ndarray  # (S,) index into shop.users
    query: np.ndarray  # (S,) index into shop.queries, -1 for the feed
    user_id: np.ndarray  # (S,) int64
    query_text: list[str | None]

    def __len__(self) -> int:
        return len(self.user)

    @property
    def scenario(self) -> np.ndarray:
        return np.where(self.query >= 0, "search", "feed")


@dataclass(frozen=True)
class Outcomes:
    """What the shoppers did with the shown lists, per session and position."""

    clicks: np.ndarray  # (S, k) 0/1
    purchases: np.ndarray  # (S, k) 0/1
    revenue: np.ndarray  # (S, k) price of each purchase

    def per_session(self) -> dict[str, np.ndarray]:
        return {
            "clicks": self.clicks.sum(axis=1),
            "purchases": self.purchases.sum(axis=1),
            "revenue": self.revenue.sum(axis=1),
        }


def draw_sessions(shop: shop_api.Shop, n: int, search_share: float, seed: int) -> Sessions:
    rng = np.random.default_rng(seed)
    users = rng.choice(len(shop.users.ids), size=n, p=shop.users.activity)
    search = rng.random(n) < search_share
    query = np.full(n, -1, dtype=np.int64)
    if search.any():
        query[search] = shop_api.pick_queries(
            rng, shop.users.preference[users[search]], shop.queries
        )
    texts = [str(shop.queries.text[q]) if q >= 0 else None for q in query]
    return Sessions(users, query, shop.users.ids[users].astype(np.int64), texts)


def item_index(shop: shop_api.Shop, item_ids: np.ndarray) -> np.ndarray:
    """Rows of shop.items for item ids (the shop's ids are sorted); -1 for an id it lacks."""
    ids = shop.items.ids
    at = np.clip(np.searchsorted(ids, item_ids), 0, len(ids) - 1)
    return np.where(ids[at] == item_ids, at, -1)


def probabilities(
    shop: shop_api.Shop, behaviour: shop_api.Behaviour, sessions: Sessions, shown: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S, k) p_click, p_purchase_given_click and true relevance of `shown` (item ids, -1
    where a list is shorter than k: probability 0) at positions 1..k."""
    n, k = shown.shape
    items = item_index(shop, shown.ravel())
    present = (shown.ravel() >= 0) & (items >= 0)
    traffic = shop_api.Traffic(
        day=np.zeros(n * k, dtype=np.int64),
        time_ns=np.zeros(n * k, dtype=np.int64),
        user=np.repeat(sessions.user, k),
        item=np.maximum(items, 0),
        query=np.repeat(sessions.query, k),
        position=np.tile(np.arange(1, k + 1, dtype=np.int64), n),
    )
    p_click, p_buy, relevance = shop_api.outcome_probabilities(traffic, shop, behaviour)
    p_click = np.where(present, p_click, 0.0).reshape(n, k)
    p_buy = np.where(present, p_buy, 0.0).reshape(n, k)
    relevance = np.where(present, np.nan_to_num(relevance), 0.0).reshape(n, k)
    return p_click, p_buy, relevance


def play(
    shop: shop_api.Shop,
    behaviour: shop_api.Behaviour,
    sessions: Sessions,
    shown: np.ndarray,
    rng: np.random.Generator,
) -> Outcomes:
    """Clicks and purchases of the shoppers on `shown` (S, k), drawn from the shop's model."""
    p_click, p_buy, _ = probabilities(shop, behaviour, sessions, shown)
    draws = rng.random((2, *shown.shape))
    clicks = (draws[0] < p_click).astype(np.int64)
    purchases = clicks * (draws[1] < p_buy)
    price = shop.items.price[np.maximum(item_index(shop, shown.ravel()), 0)].reshape(shown.shape)
    return Outcomes(clicks, purchases, purchases * np.where(shown >= 0, price, 0.0))


def ndcg(shop: shop_api.Shop, sessions: Sessions, shown: np.ndarray, k: int = 10) -> np.ndarray:
    """(S,) NDCG@k of each search session's list on the true relevance (gain 2^rel - 1), the
    ideal being the best k items of the whole catalogue for its query; NaN for feed sessions."""
    search = sessions.query >= 0
    out = np.full(len(sessions), np.nan)
    if not search.any():
        return out
    rows = shop.relevance[sessions.query[search]]  # (s, I)
    items = item_index(shop, shown[search][:, :k].ravel()).reshape(-1, min(k, shown.shape[1]))
    gains = np.where(items >= 0, np.take_along_axis(rows, np.maximum(items, 0), axis=1), 0.0)
    discount = 1.0 / np.log2(np.arange(2, gains.shape[1] + 2))
    dcg = ((2.0**gains - 1.0) * discount).sum(axis=1)
    ideal = -np.sort(-rows, axis=1)[:, : gains.shape[1]]
    idcg = ((2.0**ideal - 1.0) * discount).sum(axis=1)
    out[search] = np.where(idcg > 0, dcg / np.maximum(idcg, 1e-12), 0.0)
    return out
