"""`mtlrec serve`: the production model behind `POST /rank`, following the production alias.

- `POST /rank` `{user_id, scenario, query, candidates, k}` -> the top k items with their task
  scores and blended score, the version that answered, and the ids the store did not know.
- `GET /healthz` (the process is up), `GET /readyz` (a model is loaded and the online store
  answers; otherwise 503 with the reason), `GET /metrics` (Prometheus), `GET /openapi.json`.

A watcher thread reads the production alias every `serve.reload_seconds`; a new version is
loaded, verified and warmed up beside the serving one, then swapped in with one assignment:
a request holds the ranker it started with, so each is answered wholly by one version and no
request fails during a swap. A version that cannot load is refused, the old one keeps serving,
and the reason is logged and shown on `/readyz`.
"""

import gc
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mtlrec.config import ServeConfig
from mtlrec.model.text_cache import TextEmbeddingCache
from mtlrec.registry import Registry, RegistryError
from mtlrec.serving.ranker import SCORE_COLUMNS, ModelRefused, Ranker, Ranking
from mtlrec.serving.ranker import Request as RankRequest

log = logging.getLogger("mtlrec.serve")
MAX_ID = 2**63 - 1  # ids are int64 in the raw contract and the feature store
MAX_QUERY = 200
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)
Id = Annotated[int, Field(strict=True, ge=0, le=MAX_ID)]


@dataclass(frozen=True)
class ServePaths:
    registry: Path
    repo: Path  # the feature repo
    index: Path  # `mtlrec index` output (retrieval); optional
    cache: Path  # text embedding cache


def request_model(config: ServeConfig) -> type[BaseModel]:
    """The body of POST /rank, with this deployment's limits in its schema."""

    class RankBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        user_id: Id = Field(description="The shopper; an unknown one is scored cold-start")
        scenario: Literal["search", "feed"]
        query: str | None = Field(
            default=None, max_length=MAX_QUERY, description="Search only: what was typed"
        )
        candidates: list[Id] | None = Field(
            default=None,
            min_length=1,
            max_length=config.max_candidates,
            description=f"Items to rank (distinct, at most {config.max_candidates}); "
            "absent: retrieved (search: nearest titles; feed: the user's categories, popular)",
        )
        k: int = Field(default=10, strict=True, ge=1, le=config.max_k)

        @field_validator("query")
        @classmethod
        def _printable(cls, value: str | None) -> str | None:
            if value is None:
                return None
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("query is not valid UTF-8 text") from None
            if any(ord(c) < 32 for c in value):
                raise ValueError("query holds control characters")
            return value

        @model_validator(mode="after")
        def _consistent(self) -> "RankBody":
            if self.scenario == "search" and not (self.query or "").strip():
                raise ValueError("a search request needs a non-empty query")
            if self.scenario == "feed" and self.query is not None:
                raise ValueError("a feed request has no query")
            if self.candidates is not None and len(set(self.candidates)) != len(self.candidates):
                raise ValueError("candidates must be distinct")
            return self

    return RankBody


class RankedItem(BaseModel):
    item_id: int
    p_ctr: float | None = None
    p_cvr: float | None = None
    p_ctcvr: float | None = None
    relevance: float | None = None
    score: float


class RankResponse(BaseModel):
    version: str
    scenario: str
    items: list[RankedItem]
    unknown_users: list[int]
    unknown_items: list[int]
    retrieved: bool


class ServingVersion(Collector):
    """`mtlrec_model_version{version="vN"} 1` for the version serving when scraped.

    Why not a labelled `Gauge`, cleared at each swap: once Feast is imported, a process has
    `PROMETHEUS_MULTIPROC_DIR` set (Feast's own metrics set it for gunicorn workers), and
    `Gauge.clear()` then warns "Clearing labels has not been implemented in multi-process mode"
    at every swap, though this registry is the process's own. Read from the service, the
    gauge needs no clearing and cannot name a version that no longer serves."""

    def __init__(self, version: Callable[[], str | None]) -> None:
        self.version = version

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "mtlrec_model_version", "The serving version (1 for it)", labels=["version"]
        )
        version = self.version()
        if version is not None:
            family.add_metric([version], 1.0)
        yield family


class Metrics:
    def __init__(self, version: Callable[[], str | None]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(ServingVersion(version))
        self.requests = Counter(
            "mtlrec_requests", "Rank requests", ["scenario", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "mtlrec_request_seconds",
            "Rank latency",
            ["scenario"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "mtlrec_stage_seconds",
            "Where a rank request's time goes",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.unknown = Counter(
            "mtlrec_unknown_entities",
            "Ids the store did not know",
            ["kind"],
            registry=self.registry,
        )
        self.swaps = Counter(
            "mtlrec_model_loads", "Version loads", ["outcome"], registry=self.registry
        )


class Service:
    """The serving ranker and the watcher that swaps it when the production alias moves."""

    def __init__(self, config: ServeConfig, paths: ServePaths) -> None:
        from mtlrec.features.store import open_store
        from mtlrec.serving.retrieval import META_FILE, Retriever

        self.config, self.paths = config, paths
        self.registry = Registry(paths.registry)
        self.store = open_store(paths.repo)
        has_index = (paths.index / META_FILE).is_file()
        self.retriever = Retriever(paths.index) if has_index else None
        self.ranker: Ranker | None = None
        self.last_error: str | None = None
        self.refused: tuple[str, float] | None = None  # (version, alias mtime) last refused
        self.metrics = Metrics(lambda: self.ranker.version if self.ranker else None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        """Load the production version if it is not the one serving (refused: keep the old)."""
        try:
            wanted = self.registry.production()
        except RegistryError as error:
            self._refuse(None, str(error))
            return
        current = self.ranker.version if self.ranker else None
        if wanted is None or wanted == current or self.refused == (wanted, self._alias_mtime()):
            return
        try:
            ranker = Ranker.load(
                self.registry, wanted, self.store, self.config, self.paths.cache, self.retriever
            )
        except (ModelRefused, RegistryError) as error:
            self.refused = (wanted, self._alias_mtime())
            self._refuse(wanted, str(error))
            return
        self.ranker, self.last_error, self.refused = ranker, None, None  # the swap: one store
        self.metrics.swaps.labels(outcome="loaded").inc()
        log.warning("serving %s (was %s)", wanted, current or "none")

    def _refuse(self, version: str | None, reason: str) -> None:
        if reason != self.last_error:
            serving = self.ranker.version if self.ranker else "none"
            log.error("%s; still serving %s", reason, serving)
            self.metrics.swaps.labels(outcome="refused").inc()
        self.last_error = reason

    def _alias_mtime(self) -> float:
        alias = self.paths.registry / "production.json"
        return alias.stat().st_mtime if alias.exists() else 0.0

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="alias-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.wait(self.config.reload_seconds):
            try:
                self.refresh()
            except Exception:  # the watcher must outlive any one bad version
                log.exception("refresh failed")

    def readiness(self) -> dict[str, Any]:
        store_ok, store_error = True, None
        try:
            if self.ranker is not None:
                self.ranker.features.read({"user_id": [0], "item_id": [0]}, [None])
        except Exception as error:
            store_ok, store_error = False, f"{type(error).__name__}: {error}"
        return {
            "ready": self.ranker is not None and store_ok,
            "version": self.ranker.version if self.ranker else None,
            "online_store": "reachable" if store_ok else f"unreachable: {store_error}",
            "last_error": self.last_error,
            "retrieval": self.retriever is not None,
        }


def create_app(config: ServeConfig, paths: ServePaths, service: Service | None = None) -> FastAPI:
    service = service or Service(config, paths)
    body_model = request_model(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Iterator[None]:
        service.start()
        gc.freeze()  # the loaded model and caches: out of every later collection (tail latency)
        yield
        service.stop()

    app = FastAPI(
        title="mtlrec ranking service",
        version="1",
        description=__doc__.split("\n\n")[0],
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"where": ".".join(str(p) for p in item["loc"]), "problem": item["msg"]}
            for item in error.errors()
        ]
        summary = "; ".join(f"{d['where']}: {d['problem']}" for d in details)
        return JSONResponse(status_code=422, content={"error": summary, "detail": details})

    # `async`: a request computes on the event loop itself. The work is CPU-bound under the
    # GIL; a thread pool adds hand-offs and, with 8 requests in flight, 10x the latency of
    # queueing them. More throughput comes from more processes (`--workers`).
    @app.post("/rank", response_model=RankResponse)
    async def rank(body: body_model) -> Any:  # type: ignore[valid-type]
        ranker = service.ranker  # this request's version, whatever swaps meanwhile
        started = time.perf_counter()
        if ranker is None:
            service.metrics.requests.labels(body.scenario, "503").inc()
            reason = service.last_error or "no production model yet"
            return JSONResponse(status_code=503, content={"error": reason})
        candidates = tuple(body.candidates) if body.candidates else None
        request = RankRequest(body.user_id, body.scenario, body.query, candidates, body.k)
        try:
            ranking = ranker.rank(request)
        except ModelRefused as error:
            service.metrics.requests.labels(body.scenario, "400").inc()
            return JSONResponse(status_code=400, content={"error": str(error)})
        _observe(service.metrics, body.scenario, ranking, time.perf_counter() - started)
        return JSONResponse(_response(ranking, body.scenario))  # the schema's shape, built once

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        state = service.readiness()
        return JSONResponse(status_code=200 if state["ready"] else 503, content=state)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(service.metrics.registry).decode())

    return app


def _observe(metrics: Metrics, scenario: str, ranking: Ranking, seconds: float) -> None:
    metrics.requests.labels(scenario, "200").inc()
    metrics.latency.labels(scenario).observe(seconds)
    for stage, spent in ranking.timings.items():
        metrics.stages.labels(stage).observe(spent)
    metrics.unknown.labels("user").inc(len(ranking.unknown_users))
    metrics.unknown.labels("item").inc(len(ranking.unknown_items))


def _response(ranking: Ranking, scenario: str) -> dict[str, Any]:
    """The body of a RankResponse (floats as JSON numbers; NaN never occurs: see Blend)."""
    columns = ["item_id", *(c for c in SCORE_COLUMNS if c in ranking.items), "score"]
    records = ranking.items[columns].to_dict(orient="records")
    items = [{**record, "item_id": int(record["item_id"])} for record in records]
    return {
        "version": ranking.version,
        "scenario": scenario,
        "items": items,
        "unknown_users": ranking.unknown_users,
        "unknown_items": ranking.unknown_items,
        "retrieved": ranking.retrieved,
    }


def serve(config: ServeConfig, paths: ServePaths, host: str, port: int) -> None:
    """Run the service with uvicorn until stopped (Ctrl-C / SIGTERM)."""
    import torch
    import uvicorn

    torch.set_num_threads(1)  # small batches: one thread each, requests side by side
    # New queries' embeddings stay in this process's memory (the most recent 100,000): written
    # to the pipeline's text cache, every unseen query left two files there (retrieval's and
    # the ranker's lookups), and each later miss listed them all.
    TextEmbeddingCache.persist_new = False
    # Our own lines at INFO, the libraries' warnings only: faiss's loader and Feast's registry
    # logged ~10 lines at each start (two "Could not load library" among them, which are not).
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("mtlrec").setLevel(logging.INFO)
    app = create_app(config, paths)
    print(f"serving on http://{host}:{port} (POST /rank, GET /readyz, /metrics)", flush=True)
    _exit_on_sigterm()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _exit_on_sigterm() -> None:
    """End the process on SIGTERM through SystemExit, so that its exit handlers run.

    Why: uvicorn (0.54) shuts down gracefully on SIGTERM, then raises it again under the handler
    it found; under the default one the process dies without its `atexit` handlers, among them
    Feast's removal of the metrics folder it makes as its online read path is imported
    (`/tmp/feast_metrics_*`): every stop of the service left one."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
