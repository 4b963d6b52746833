"""The ranking function: one model version, its features from the online store, the blend.

`Ranker.rank` is what `POST /rank` answers and what the online test plays shoppers against, in
process: candidates (given, or retrieved), the feature service's values for (user, item) from
the online store, the request-time features (spelling correction, word and term match) and the
model through the very functions evaluation uses (`tensor_frame`, `predict_frame`), then the
scenario's blend of the task scores. A `Ranker` is built whole or not at all: a version whose
files are damaged, or whose model cannot load, is refused with the reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtlrec.config import Scenario, ServeConfig
from mtlrec.errors import UserError
from mtlrec.serving.blend import Blend
from mtlrec.serving.features import OnlineFeatures
from mtlrec.serving.retrieval import Retriever

SCORE_COLUMNS = ("p_ctr", "p_cvr", "p_ctcvr", "relevance")
PRICE_COLUMN = "item_profile__price"


class ModelRefused(UserError):
    """A model version that cannot serve: the reason names the file or the mismatch."""


@dataclass(frozen=True)
class Request:
    user_id: int
    scenario: Scenario
    query: str | None
    candidates: tuple[int, ...] | None
    k: int


@dataclass
class Ranking:
    """The top k of a request, each item with its task scores and blended score."""

    version: str
    items: pd.DataFrame  # item_id, p_ctr, p_cvr, p_ctcvr, relevance (those the model has), score
    unknown_users: list[int]
    unknown_items: list[int]
    retrieved: bool
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds


@dataclass
class Ranker:
    version: str
    model: Any  # mtlrec.model.predict.LoadedModel
    features: OnlineFeatures
    blends: dict[str, Blend]
    config: ServeConfig
    cache_dir: Path
    retriever: Retriever | None

    @classmethod
    def load(
        cls,
        registry: Any,
        version: str,
        store: Any,
        config: ServeConfig,
        cache_dir: Path,
        retriever: Retriever | None,
    ) -> Ranker:
        """Verify, load and warm up a registered version; ModelRefused says why it cannot."""
        problems = registry.problems(version)
        if problems:
            raise ModelRefused(f"{version} refused: {'; '.join(problems)}")
        return cls.from_folder(registry.path(version), version, store, config, cache_dir, retriever)

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        version: str,
        store: Any,
        config: ServeConfig,
        cache_dir: Path,
        retriever: Retriever | None,
    ) -> Ranker:
        """A model folder (a registered version, or the challenger not registered yet) ready
        to rank; `version` is what its answers say answered them."""
        from mtlrec.model.predict import load

        try:
            model = load(folder)
            service = json.loads((folder / "schema.json").read_text())["feature_service"]
            features = OnlineFeatures(store, service)
        except Exception as error:  # a version that cannot load never serves
            raise ModelRefused(f"{version} refused: {type(error).__name__}: {error}") from None
        outputs = set(model.outputs) | {"price"}
        blends = {scenario: Blend.parse(formula) for scenario, formula in config.blend.items()}
        for scenario, blend in blends.items():
            if blend.names - outputs:
                missing = sorted(blend.names - outputs)
                raise ModelRefused(f"{version} refused: the {scenario} blend reads {missing}")
        ranker = cls(version, model, features, blends, config, cache_dir, retriever)
        ranker.warm_up(store)
        return ranker

    def warm_up(self, store: Any) -> None:
        """One ranking before the first request: loads the encoder, fills the caches."""
        items = self.retriever.item_ids[:5] if self.retriever is not None else np.array([0])
        self.rank(Request(-1, "search", "warm up", tuple(int(i) for i in items), 1))

    def rank(self, request: Request) -> Ranking:
        return self.rank_many([request])[0]

    def rank_many(self, requests: Sequence[Request]) -> list[Ranking]:
        """Rank several requests in one pass (the online test ranks thousands of sessions):
        each distinct entity read once, the model run over all rows in batches."""
        scored = self._score_many(requests)
        scores, blended, clock = scored.scores, scored.blended, scored.clock
        unknown_users = set(scored.unknown.get("user_id", []))
        unknown_items = set(scored.unknown.get("item_id", []))
        rankings = []
        for request, items, was_retrieved, rows, order in scored.orders(requests):
            top = pd.DataFrame(
                {"item_id": items[order], **{n: v[rows][order] for n, v in scores.items()}}
            )
            top["score"] = blended[rows][order]
            rankings.append(
                Ranking(
                    version=self.version,
                    items=top,
                    unknown_users=[request.user_id] if request.user_id in unknown_users else [],
                    unknown_items=sorted(unknown_items.intersection(items.tolist())),
                    retrieved=was_retrieved,
                    timings=clock.seconds,
                )
            )
        return rankings

    def top_items(self, requests: Sequence[Request]) -> list[np.ndarray]:
        """Each request's ranked item ids, as `rank_many` orders them, without building a
        response per request (the online test needs only the ids of 8,000 rankings)."""
        scored = self._score_many(requests)
        return [items[order] for _, items, _, _, order in scored.orders(requests)]

    def _score_many(self, requests: Sequence[Request]) -> _Scored:
        clock = _Clock()
        candidates, retrieved = self.candidates(requests, clock)
        frame, unknown = clock.time("features", lambda: self.frame(requests, candidates))
        scores = self.score(frame, clock)
        price = pd.to_numeric(frame[PRICE_COLUMN], errors="coerce") if PRICE_COLUMN in frame else 0
        columns = {**scores, "price": np.nan_to_num(np.asarray(price, dtype=np.float64))}
        scenario = frame["scenario"].to_numpy()
        blended = np.zeros(len(frame))
        for name, blend in self.blends.items():
            rows = scenario == name
            if rows.any():
                blended[rows] = blend({key: value[rows] for key, value in columns.items()})
        return _Scored(candidates, retrieved, scores, blended, unknown, clock)

    def candidates(
        self, requests: Sequence[Request], clock: _Clock | None = None
    ) -> tuple[list[np.ndarray], list[bool]]:
        """Each request's candidates: its own, else retrieved (all search queries at once);
        and whether they were retrieved."""
        clock = clock or _Clock()
        found: list[np.ndarray | None] = [
            np.asarray(r.candidates, dtype=np.int64) if r.candidates else None for r in requests
        ]
        missing = [i for i, items in enumerate(found) if items is None]
        if missing and self.retriever is None:
            raise ModelRefused("no candidates given and no retrieval index loaded")
        n, retriever = self.config.retrieve, self.retriever
        searches = [i for i in missing if requests[i].scenario == "search"]
        if searches:
            queries = [str(requests[i].query) for i in searches]
            hits = clock.time(
                "retrieval", lambda: retriever.search_many(queries, n, self.cache_dir)
            )
            for i, items in zip(searches, hits, strict=True):
                found[i] = items
        feeds = [i for i in missing if requests[i].scenario != "search"]
        if feeds:
            categories = self.config.feed_categories
            users = [requests[i].user_id for i in feeds]
            lists = clock.time(
                "retrieval", lambda: [retriever.feed(user, n, categories) for user in users]
            )
            for i, items in zip(feeds, lists, strict=True):
                found[i] = items
        retrieved = set(missing)
        return [np.asarray(f, dtype=np.int64) for f in found], [
            i in retrieved for i in range(len(requests))
        ]

    def frame(
        self, requests: Sequence[Request], candidates: Sequence[np.ndarray]
    ) -> tuple[pd.DataFrame, dict[str, list[int]]]:
        """The model's input rows for the candidates: what the feature store holds for (user,
        item), and the request's own columns, as a training row carries them."""
        sizes = [len(items) for items in candidates]
        users = np.repeat([r.user_id for r in requests], sizes).astype(np.int64)
        items = np.concatenate(candidates) if candidates else np.zeros(0, np.int64)
        queries = [r.query if r.scenario == "search" else None for r in requests]
        query = [q for q, size in zip(queries, sizes, strict=True) for _ in range(size)]
        request_columns = {
            "user_id": users,
            "item_id": items,
            "scenario": np.repeat([r.scenario for r in requests], sizes),
            "position": np.full(len(items), self.config.position),
            "query": query,
        }
        read = self.features.read({"user_id": users, "item_id": items}, query, request_columns)
        return read.frame, read.unknown

    def score(self, frame: pd.DataFrame, clock: _Clock | None = None) -> dict[str, np.ndarray]:
        """Each task's score of every row: the model's outputs, as evaluation computes them."""
        from mtlrec.model.inputs import tensor_frame
        from mtlrec.model.predict import predict_frame

        clock = clock or _Clock()
        loaded = self.model
        tensors = clock.time(
            "request_features",
            lambda: tensor_frame(
                loaded.spec, loaded.cfg, frame, self.cache_dir, loaded.model.text_encoder
            ),
        )
        outputs = clock.time("model", lambda: predict_frame(loaded.model, tensors))
        return {name: value.double().numpy() for name, value in outputs.items()}


@dataclass(frozen=True)
class _Scored:
    """Every candidate row of a batch of requests scored and blended."""

    candidates: list[np.ndarray]
    retrieved: list[bool]
    scores: dict[str, np.ndarray]  # per task, one value per row
    blended: np.ndarray  # the ranking score of each row
    unknown: dict[str, list[int]]
    clock: _Clock

    def orders(
        self, requests: Sequence[Request]
    ) -> Iterator[tuple[Request, np.ndarray, bool, slice, np.ndarray]]:
        """Per request: its candidates, whether they were retrieved, its rows, and the order
        of its top `k` rows by blended score (ties: candidate order)."""
        start = 0
        for request, items, was_retrieved in zip(
            requests, self.candidates, self.retrieved, strict=True
        ):
            rows = slice(start, start + len(items))
            start += len(items)
            order = np.argsort(-self.blended[rows], kind="stable")[: request.k]
            yield request, items, was_retrieved, rows, order


class _Clock:
    """Seconds spent per stage of one request."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def time(self, stage: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return work()
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started
