"""The ranking service under a bounded load on loopback: latency, throughput, where time goes.

For each online store (SQLite, the local profile; Redis with the PostgreSQL registry, the
production profile) a real `mtlrec serve` (uvicorn) is started on the workspace's production
model, and a client sends `--requests` requests at each concurrency (keep-alive connections,
one per client thread): search requests with `--candidates` candidates each (a judged query, a
random user, random items), then search requests without candidates (retrieval, then ranking).
The server's own histograms (`/metrics`, read before and after) give the mean time of each
stage. The production run applies and materializes the feature repo into its own Feast project
and PostgreSQL database, and removes both afterwards.

    .venv/bin/python benchmarks/bench_serving.py [--workspace .] [--requests 2000]
        [--concurrency 1 8] [--candidates 100] [--stores sqlite redis]

Run it after `make run` (a production model, a materialized store and `data/index`).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

STAGES = ("retrieval", "features", "request_features", "model")


@dataclass(frozen=True)
class Row:
    store: str
    kind: str
    concurrency: int
    requests: int
    p50_ms: float
    p99_ms: float
    per_s: float
    stages_ms: dict[str, float]


def _env(store: str, project: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    if store == "redis":
        env.update(
            MTLREC_FEAST_PROFILE="production",
            MTLREC_FEAST_PROJECT=project,
            MTLREC_FEAST_REGISTRY_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{project}",
            MTLREC_FEAST_REDIS="127.0.0.1:6379",
        )
    else:
        env["MTLREC_FEAST_PROFILE"] = "local"
    return env


def _mtlrec(workspace: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["mtlrec", *args], cwd=workspace, env=env, check=True, capture_output=True)


@contextmanager
def _production_store(workspace: Path, project: str):
    """The feature repo applied to a fresh PostgreSQL registry and Redis project."""
    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{project}"')
    env = _env("redis", project)
    try:
        _mtlrec(workspace, env, "feast-apply")
        _mtlrec(workspace, env, "materialize", "--start", "2000-01-01")
        yield env
    finally:
        teardown = (
            "from pathlib import Path; from mtlrec.features import store; "
            "store.open_store(Path('feature_repo')).teardown()"
        )
        subprocess.run([sys.executable, "-c", teardown], cwd=workspace, env=env, check=False)
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{project}" WITH (FORCE)')


@contextmanager
def _server(workspace: Path, env: dict[str, str], port: int):
    command = ["mtlrec", "serve", "--port", str(port)]
    log = open(workspace / "reports" / f"bench_serving_{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(command, cwd=workspace, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"mtlrec serve exited: see {log.name}")
            time.sleep(0.5)
        else:
            raise TimeoutError(f"mtlrec serve not ready: see {log.name}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _bodies(workspace: Path, n: int, candidates: int, retrieve: bool, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    users = pd.read_parquet(workspace / "data/features/user_profile.parquet")["user_id"].to_numpy()
    items = pd.read_parquet(workspace / "data/features/item_profile.parquet")["item_id"].to_numpy()
    queries = pd.read_parquet(workspace / "data/validated/judgments")["query"].unique()
    bodies = []
    for _ in range(n):
        body = {
            "user_id": int(rng.choice(users)),
            "scenario": "search",
            "query": str(rng.choice(queries)),
            "k": 10,
        }
        if not retrieve:
            size = min(candidates, len(items))
            body["candidates"] = [int(i) for i in rng.choice(items, size, replace=False)]
        bodies.append(body)
    return bodies


def _stage_sums(url: str) -> dict[str, tuple[float, float]]:
    text = httpx.get(f"{url}/metrics").text
    found = {}
    for stage in STAGES:
        total = re.search(rf'mtlrec_stage_seconds_sum{{stage="{stage}"}} (\S+)', text)
        count = re.search(rf'mtlrec_stage_seconds_count{{stage="{stage}"}} (\S+)', text)
        found[stage] = (
            float(total.group(1)) if total else 0.0,
            float(count.group(1)) if count else 0.0,
        )
    return found


def _load(url: str, bodies: list[dict], concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    chunks = [bodies[i::concurrency] for i in range(concurrency)]

    def client(chunk: list[dict]) -> None:
        with httpx.Client(base_url=url, timeout=30) as session:
            for body in chunk:
                started = time.perf_counter()
                response = session.post("/rank", json=body)
                spent = time.perf_counter() - started
                with lock:
                    latencies.append(spent)
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:200]}")

    threads = [threading.Thread(target=client, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return latencies, time.perf_counter() - started


def _run(url: str, store: str, kind: str, bodies: list[dict], concurrency: int) -> Row:
    _load(url, bodies[:50], 1)  # warm-up: caches and the encoder
    before = _stage_sums(url)
    latencies, seconds = _load(url, bodies, concurrency)
    after = _stage_sums(url)
    stages = {
        stage: 1000
        * (after[stage][0] - before[stage][0])
        / max(after[stage][1] - before[stage][1], 1)
        for stage in STAGES
    }
    ms = np.array(latencies) * 1000
    return Row(store, kind, concurrency, len(ms), float(np.percentile(ms, 50)),
               float(np.percentile(ms, 99)), len(ms) / seconds, stages)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("."))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--stores", nargs="+", default=["sqlite", "redis"])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    workspace = args.workspace.resolve()
    (workspace / "reports").mkdir(exist_ok=True)
    ranked = _bodies(workspace, args.requests, args.candidates, retrieve=False, seed=0)
    retrieved = _bodies(workspace, args.requests, args.candidates, retrieve=True, seed=1)
    # The client's prepared bodies (hundreds of thousands of objects) out of its own garbage
    # collections: a full collection over them paused the client for ~10 ms now and then,
    # which the latencies it measured counted as the server's.
    gc.collect()
    gc.freeze()
    rows = []
    for store in args.stores:
        project = f"mtlrec_bench_{uuid.uuid4().hex[:8]}"
        context = _production_store(workspace, project) if store == "redis" else None
        env = context.__enter__() if context else _env(store, project)
        try:
            with _server(workspace, env, args.port) as url:
                for concurrency in args.concurrency:
                    rows.append(
                        _run(url, store, f"{args.candidates} candidates", ranked, concurrency)
                    )
                rows.append(_run(url, store, "retrieval + rank", retrieved, 1))
        finally:
            if context:
                context.__exit__(None, None, None)
    header = (f"{'store':<7} {'requests':<17} {'conc':>4} {'n':>5} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'req/s':>6}  " + "  ".join(f"{s:>16}" for s in STAGES))  # fmt: skip
    print(header)
    print("-" * len(header))
    for row in rows:
        stages = "  ".join(f"{row.stages_ms[s]:>13.2f} ms" for s in STAGES)
        print(f"{row.store:<7} {row.kind:<17} {row.concurrency:>4} {row.requests:>5} "
              f"{row.p50_ms:>7.2f} {row.p99_ms:>7.2f} {row.per_s:>6.0f}  {stages}")  # fmt: skip
    print("stages: server-side means per request (retrieval only when no candidates are given)")


if __name__ == "__main__":
    main()
