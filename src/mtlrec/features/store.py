"""Feast helpers: pick the profile, apply the repo, open the store, materialize.

The profile is chosen by the environment (MTLREC_FEAST_PROFILE=local|production) so the same
feature definitions serve a laptop (DuckDB + SQLite + file registry) and production (Redis
online store, PostgreSQL registry).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

PROFILE_ENV = "MTLREC_FEAST_PROFILE"
PRODUCTION_DEFAULTS = {
    "MTLREC_FEAST_REGISTRY_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "MTLREC_FEAST_REDIS": "127.0.0.1:6379",
}


def profile() -> str:
    name = os.environ.get(PROFILE_ENV, "local")
    if name not in ("local", "production"):
        raise ValueError(f"{PROFILE_ENV} must be 'local' or 'production', got {name!r}")
    return name


def store_yaml(repo: Path) -> Path:
    """The feature_store.yaml of the active profile."""
    if profile() == "production":
        for key, value in PRODUCTION_DEFAULTS.items():
            os.environ.setdefault(key, value)
        return repo / "feature_store.production.yaml"
    return repo / "feature_store.yaml"


def open_store(repo: Path) -> Any:
    from feast import FeatureStore

    repo = repo.resolve()
    (repo.parent / "data" / "feast").mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(repo), fs_yaml_file=store_yaml(repo))


def _feast_cli(repo: Path, *args: str) -> str:
    # `feast apply` imports the repo's modules from its own working directory; running the real
    # CLI in a child process keeps that chdir and sys.path change out of the caller (an Airflow
    # worker, a test).
    repo = repo.resolve()
    (repo.parent / "data" / "feast").mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).with_name("feast")), "-c", str(repo)]
    command += ["-f", str(store_yaml(repo)), *args]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
    if done.returncode != 0:
        raise RuntimeError(f"`feast {' '.join(args)}` failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def apply(repo: Path, summary_file: Path | None = None) -> dict[str, list[str]]:
    """`feast apply` the repo; return (and optionally write) what the registry now holds."""
    output = _feast_cli(repo, "apply")
    print(output.strip())
    summary = registry_contents(repo)
    if summary_file is not None:
        summary_file.parent.mkdir(parents=True, exist_ok=True)
        summary_file.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def plan(repo: Path) -> str:
    return _feast_cli(repo, "plan")


def registry_contents(repo: Path) -> dict[str, list[str]]:
    store = open_store(repo)
    return {
        "entities": sorted(entity.name for entity in store.list_entities()),
        "feature_views": sorted(view.name for view in store.list_feature_views()),
        "feature_services": sorted(service.name for service in store.list_feature_services()),
    }


@dataclass(frozen=True)
class MaterializeSummary:
    mode: str
    end: str
    views: list[str]


def materialize(
    repo: Path, end: datetime, start: datetime | None = None, summary_file: Path | None = None
) -> MaterializeSummary:
    """Load feature values into the online store: [start, end] if start is given, else
    incrementally from each view's last materialized time (idempotent: rows are upserts)."""
    store = open_store(repo)
    views = [view.name for view in store.list_feature_views() if view.online]
    if start is None:
        store.materialize_incremental(end_date=end, feature_views=views)
    else:
        store.materialize(start_date=start, end_date=end, feature_views=views)
    summary = MaterializeSummary(
        mode="incremental" if start is None else "full",
        end=end.isoformat(),
        views=views,
    )
    if summary_file is not None:
        summary_file.parent.mkdir(parents=True, exist_ok=True)
        summary_file.write_text(json.dumps(asdict(summary), indent=2, sort_keys=True) + "\n")
    return summary
