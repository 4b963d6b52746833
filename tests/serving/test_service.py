"""`POST /rank` over real HTTP: rankings, retrieval, cold start, bad requests, health, metrics,
and schemathesis against the served OpenAPI spec (no request may give a 5xx)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tool_env
from tests.serving.conftest import Server, serving

pytestmark = pytest.mark.slow
TASKS = ("p_ctr", "p_cvr", "p_ctcvr", "relevance")


def _search(catalogue: dict, **body: object) -> dict:
    return {"user_id": catalogue["users"][0], "scenario": "search",
            "query": catalogue["queries"][0], "k": 5, **body}  # fmt: skip


def test_a_search_ranks_the_candidates_by_the_blend(server: Server, catalogue: dict) -> None:
    candidates = catalogue["items"][:20]
    answer = server.post(_search(catalogue, candidates=candidates)).json()
    assert answer["version"] == "v1" and answer["retrieved"] is False
    items = answer["items"]
    assert len(items) == 5 and {i["item_id"] for i in items} <= set(candidates)
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    for item in items:  # search: expected purchase weighted by predicted relevance (params)
        assert all(0.0 <= item[t] <= 1.0 for t in ("p_ctr", "p_cvr", "p_ctcvr"))
        assert item["score"] == pytest.approx(item["p_ctcvr"] * item["relevance"] / 3, rel=1e-6)
        assert item["p_ctcvr"] == pytest.approx(item["p_ctr"] * item["p_cvr"], rel=1e-5)


def test_without_candidates_search_and_feed_retrieve(server: Server, catalogue: dict) -> None:
    search = server.post(_search(catalogue, k=10)).json()
    assert search["retrieved"] is True and len(search["items"]) == 10
    feed = server.post({"user_id": catalogue["users"][1], "scenario": "feed", "k": 7}).json()
    assert feed["retrieved"] is True and len(feed["items"]) == 7
    assert all(item["score"] == pytest.approx(item["p_ctcvr"]) for item in feed["items"])


def test_unknown_user_and_items_are_scored_cold_and_listed(server: Server, catalogue: dict) -> None:
    known = catalogue["items"][:3]
    body = _search(catalogue, user_id=999_999_999, candidates=[*known, 123, 456], k=5)
    answer = server.post(body).json()
    assert answer["unknown_users"] == [999_999_999]
    assert answer["unknown_items"] == [123, 456]
    assert len(answer["items"]) == 5
    metrics = server.get("/metrics").text
    assert 'mtlrec_unknown_entities_total{kind="item"}' in metrics


def test_a_new_query_is_embedded_in_memory_not_in_the_pipelines_cache(
    server: Server, catalogue: dict, pipeline_run: Path
) -> None:
    """The service embeds a query it has never seen, answers the same the second time, and
    writes nothing into the pipeline's text cache (a file per unseen query before)."""
    shards = pipeline_run / "data" / "cache" / "text_embeddings"
    before = sorted(shards.rglob("*.npz"))
    assert before  # the pipeline's own titles and queries
    body = _search(catalogue, query="a query no shopper typed before 7f3a", k=5)
    first = server.post(body).json()
    assert first["retrieved"] is True and len(first["items"]) == 5
    assert server.post(body).json()["items"] == first["items"]
    assert sorted(shards.rglob("*.npz")) == before


def test_the_log_holds_the_services_own_lines(server: Server) -> None:
    """A person reads which version serves, not the libraries' start-up chatter."""
    logged = server.logged()
    assert "mtlrec.serve serving v1 (was none)" in logged
    assert "faiss.loader" not in logged and "Registry cache expired" not in logged


def test_a_stopped_service_leaves_no_feast_metrics_folder(
    pipeline_run: Path, catalogue: dict, tmp_path: Path
) -> None:
    """Feast makes a metrics folder in the temporary directory as its online reads start and
    removes it at exit; a service stopped with SIGTERM exits through its exit handlers. (Feast
    names its folder in the environment, which children inherit: a test process that imported
    `feast.metrics` before would hand the service its own.)"""
    env = {k: v for k, v in tool_env().items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    with serving(pipeline_run, env={**env, "TMPDIR": str(tmp_path)}) as running:
        assert running.post(_search(catalogue)).status_code == 200
        assert list(tmp_path.glob("feast_metrics_*"))  # made while serving
    assert running.process.returncode == 128 + signal.SIGTERM
    assert list(tmp_path.glob("feast_metrics_*")) == []


BAD = {
    "empty candidates": {"candidates": []},
    "duplicate candidates": {"candidates": [1, 1]},
    "k zero": {"k": 0},
    "k negative": {"k": -3},
    "10,000 candidates": {"candidates": list(range(1, 10_001))},
    "search without a query": {"query": None},
    "blank query": {"query": "   "},
    "feed with a query": {"scenario": "feed"},
    "unknown scenario": {"scenario": "ads"},
    "user id as text": {"user_id": "42"},
    "fractional k": {"k": 2.5},
    "negative item": {"candidates": [-1]},
    "huge id": {"user_id": 2**64},
    "extra field": {"debug": True},
    "control characters": {"query": "bose\x00"},
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_request_is_a_422_naming_the_problem(
    server: Server, catalogue: dict, case: str
) -> None:
    response = server.post(_search(catalogue, **BAD[case]))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error and isinstance(error, str) and "\n" not in error


def test_malformed_json_is_a_422(server: Server) -> None:
    response = server.post(None, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "error" in response.json()


def test_health_readiness_and_metrics(server: Server, catalogue: dict) -> None:
    assert server.get("/healthz").json() == {"status": "ok"}
    ready = server.get("/readyz").json()
    assert ready["ready"] and ready["version"] == "v1" and ready["online_store"] == "reachable"
    server.post(_search(catalogue))
    metrics = server.get("/metrics").text
    for line in (
        'mtlrec_requests_total{scenario="search",status="200"}',
        'mtlrec_request_seconds_bucket{le="0.02",scenario="search"}',
        'mtlrec_model_version{version="v1"} 1.0',
        'mtlrec_stage_seconds_count{stage="features"}',
        'mtlrec_stage_seconds_count{stage="model"}',
    ):
        assert line in metrics, line


def test_schemathesis_finds_no_server_error(server: Server, tmp_path) -> None:
    spec = server.get("/openapi.json").json()
    assert "/rank" in spec["paths"] and spec["paths"]["/rank"]["post"]["requestBody"]
    (tmp_path / "openapi.json").write_text(json.dumps(spec))
    done = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
            "--checks", "not_a_server_error", "--max-examples", "150", "--seed", "1",
            "--phases", "examples,coverage,fuzzing", "--no-color", "--generation-database", "none",
        ],
        capture_output=True, text=True, env=tool_env(), timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout
    # It really ran cases: the summary's "Test cases: N generated, N passed" (the earlier
    # "4 passed" lines count API operations).
    cases = re.search(r"Test cases:\s*(\d+) generated, (\d+) passed", done.stdout)
    assert cases and int(cases.group(2)) >= 100, done.stdout[-2000:]
