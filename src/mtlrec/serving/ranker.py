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
from collections.abc import Callable
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
        from mtlrec.model.predict import load

        problems = registry.problems(version)
        if problems:
            raise ModelRefused(f"{version} refused: {'; '.join(problems)}")
        folder = registry.path(version)
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
        clock = _Clock()
        items, retrieved = self._candidates(request, clock)
        frame, unknown = clock.time("features", lambda: self.frame(request, items))
        scores = self.score(frame, clock)
        price = pd.to_numeric(frame[PRICE_COLUMN], errors="coerce") if PRICE_COLUMN in frame else 0
        columns = {**scores, "price": np.nan_to_num(np.asarray(price, dtype=np.float64))}
        blended = self.blends[request.scenario](columns)
        order = np.argsort(-blended, kind="stable")[: request.k]
        top = pd.DataFrame({"item_id": items[order], **{n: v[order] for n, v in scores.items()}})
        top["score"] = blended[order]
        return Ranking(
            version=self.version,
            items=top,
            unknown_users=unknown.get("user_id", []),
            unknown_items=unknown.get("item_id", []),
            retrieved=retrieved,
            timings=clock.seconds,
        )

    def _candidates(self, request: Request, clock: _Clock) -> tuple[np.ndarray, bool]:
        if request.candidates:
            return np.asarray(request.candidates, dtype=np.int64), False
        if self.retriever is None:
            raise ModelRefused("no candidates given and no retrieval index loaded")
        n = self.config.retrieve
        if request.scenario == "search":
            query = str(request.query)
            found = clock.time("retrieval", lambda: self.retriever.search(query, n, self.cache_dir))
        else:
            categories = self.config.feed_categories
            found = clock.time(
                "retrieval", lambda: self.retriever.feed(request.user_id, n, categories)
            )
        return np.asarray(found, dtype=np.int64), True

    def frame(self, request: Request, items: np.ndarray) -> tuple[pd.DataFrame, dict]:
        """The model's input rows for the candidates: what the feature store holds for (user,
        item), and the request's own columns, as a training row carries them."""
        n = len(items)
        users = np.full(n, request.user_id, dtype=np.int64)
        query = request.query if request.scenario == "search" else None
        read = self.features.read({"user_id": users, "item_id": items}, [query] * n)
        frame = read.frame.assign(
            user_id=users,
            item_id=items,
            scenario=request.scenario,
            position=self.config.position,
            query=query,
        )
        return frame, read.unknown

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
