"""Feast helpers: pick the profile, apply the repo, open the store, materialize.

The profile is chosen by the environment (MTLREC_FEAST_PROFILE=local|production) so the same
feature definitions serve a laptop (DuckDB + SQLite + file registry) and production (Redis
online store, PostgreSQL registry).

A local registry belongs to one workspace: Feast keeps the SQLite online store's tables in it by
absolute path, so a registry copied with a checkout (`cp -a`) would make `feast apply` in the
copy drop the original's tables. `data/feast/workspace.json` records whose registry it is; a
registry of another workspace is set aside before this one applies its repo.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROFILE_ENV = "MTLREC_FEAST_PROFILE"
WORKSPACE_FILE = "workspace.json"
LOCAL_REGISTRY = "registry.db"  # feature_store.yaml: registry.path
PRODUCTION_DEFAULTS = {
    "MTLREC_FEAST_PROJECT": "mtlrec",
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
    if _foreign_registry(repo):
        print(f"{_feast_dir(repo) / LOCAL_REGISTRY} was applied in another workspace: re-applying")
        apply(repo)
    return FeatureStore(repo_path=str(repo), fs_yaml_file=store_yaml(repo))


def _feast_dir(repo: Path) -> Path:
    return repo.resolve().parent / "data" / "feast"


def _owner(repo: Path) -> dict[str, str]:
    return {"workspace": str(repo.resolve().parent)}


def _foreign_registry(repo: Path) -> bool:
    """A local registry file that this workspace did not apply (copied, or moved with it)."""
    folder = _feast_dir(repo)
    if profile() != "local" or not (folder / LOCAL_REGISTRY).exists():
        return False
    try:
        recorded = json.loads((folder / WORKSPACE_FILE).read_text())
    except (OSError, ValueError):
        return True
    return recorded != _owner(repo)


def _set_aside_foreign_registry(repo: Path) -> None:
    """Apply with no registry rather than another workspace's: Feast tears down the infra an
    old registry lists, and a copied one lists the original's tables."""
    if _foreign_registry(repo):
        folder = _feast_dir(repo)
        (folder / LOCAL_REGISTRY).replace(folder / f"{LOCAL_REGISTRY}.foreign")


def _feast(repo: Path, action: str) -> str:
    """Feast's own plan (and apply) of the repo, in a child process (`feast_repo`): Feast
    imports the repo's modules from its folder (chdir, sys.path), which stays out of the caller
    (an Airflow worker, a test). Returns one line per definition that really changes."""
    from mtlrec.features import feast_repo

    repo = repo.resolve()
    (repo.parent / "data" / "feast").mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", feast_repo.__name__, action, str(repo), str(store_yaml(repo))]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
    if done.returncode != 0:
        raise RuntimeError(f"`feast {action}` failed:\n{done.stdout}\n{done.stderr}")
    logging.getLogger(__name__).debug("feast %s:\n%s", action, done.stderr)
    return feast_repo.describe(json.loads(done.stdout.strip().splitlines()[-1]))


def apply(repo: Path, summary_file: Path | None = None) -> dict[str, list[str]]:
    """`feast apply` the repo; print what really changed; return (and optionally write) what
    the registry now holds."""
    _set_aside_foreign_registry(repo)
    changes = _feast(repo, "apply")
    if profile() == "local":
        (_feast_dir(repo) / WORKSPACE_FILE).write_text(json.dumps(_owner(repo)) + "\n")
    print(changes)
    summary = registry_contents(repo)
    if summary_file is not None:
        summary_file.parent.mkdir(parents=True, exist_ok=True)
        summary_file.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def plan(repo: Path) -> str:
    """What `feast apply` would change, one line per definition (timestamps aside)."""
    return _feast(repo, "plan")


def registry_contents(repo: Path) -> dict[str, list[str]]:
    store = open_store(repo)
    return {
        "entities": sorted(entity.name for entity in store.list_entities()),
        "feature_views": sorted(view.name for view in store.list_feature_views()),
        "on_demand_feature_views": sorted(
            view.name for view in store.list_on_demand_feature_views()
        ),
        "feature_services": sorted(service.name for service in store.list_feature_services()),
    }


@dataclass(frozen=True)
class ViewLoad:
    """One feature view's materialization: the window read and the rows written online."""

    view: str
    start: str
    rows: int
    seconds: float


@dataclass(frozen=True)
class MaterializeSummary:
    mode: str
    end: str
    online_store: str
    loads: list[ViewLoad]

    @property
    def views(self) -> list[str]:
        return [load.view for load in self.loads]

    def recorded(self) -> dict[str, Any]:
        """What the summary file keeps: what was loaded, not when or how fast (a DVC output;
        identical loads must write identical files)."""
        loads = [{"view": load.view, "start": load.start, "rows": load.rows} for load in self.loads]
        return {"mode": self.mode, "online_store": self.online_store, "loads": loads}

    @property
    def rows(self) -> int:
        return sum(load.rows for load in self.loads)

    def __str__(self) -> str:
        lines = [f"{self.mode} materialization into {self.online_store} up to {self.end}:"]
        lines += [
            f"  {load.view:<20} {load.rows:>9,} rows  {load.seconds:6.2f} s  from {load.start}"
            for load in self.loads
        ]
        seconds = sum(load.seconds for load in self.loads)
        lines.append(f"  {'total':<20} {self.rows:>9,} rows  {seconds:6.2f} s")
        return "\n".join(lines)


# A clock a little ahead of the store's is fine; an end date in the future is not: Feast records
# it as the view's last materialized time, so every later incremental run would start after it
# and load nothing.
CLOCK_SKEW = timedelta(minutes=5)


def materialize(
    repo: Path,
    end: datetime,
    start: datetime | None = None,
    summary_file: Path | None = None,
    timed: bool = False,
) -> MaterializeSummary:
    """Load the online views into the online store, one view at a time with its row count.

    With `start`, a full load of [start, end]; without, incremental: each view from its last
    materialized end (the first time: now - ttl, Feast's rule). Writes are upserts of each
    entity's latest row in the window, so running it twice leaves the same online values.
    """
    end, start = _utc(end), None if start is None else _utc(start)
    if end > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError(f"materialize end {end.isoformat()} is in the future")
    store = open_store(repo)
    views = sorted((v for v in store.list_feature_views() if v.online), key=lambda v: v.name)
    loads = []
    for number, view in enumerate(views, start=1):
        loads.append(_load_view(store, view, start, end))
        done = loads[-1]  # progress: one line per view as it lands (Feast prints no bar here)
        print(f"[{number}/{len(views)}] {view.name}: {done.rows:,} rows", flush=True)
    summary = MaterializeSummary(
        mode="incremental" if start is None else "full",
        end=end.isoformat(),
        online_store=store.config.online_store.type,
        loads=loads,
    )
    if summary_file is not None:
        summary_file.parent.mkdir(parents=True, exist_ok=True)
        # A stage's output records what was loaded; a scheduled run's report also when and how
        # fast (`timed`).
        recorded = asdict(summary) if timed else summary.recorded()
        summary_file.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    return summary


def _load_view(store: Any, view: Any, start: datetime | None, end: datetime) -> ViewLoad:
    window_start = start if start is not None else _incremental_start(view)
    rows = count_latest_rows(store, view, window_start, end)
    started = time.perf_counter()
    if start is None:
        store.materialize_incremental(end_date=end, feature_views=[view.name])
    else:
        store.materialize(start_date=start, end_date=end, feature_views=[view.name])
    return ViewLoad(view.name, window_start.isoformat(), rows, time.perf_counter() - started)


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are UTC, as Feast reads them."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _incremental_start(view: Any) -> datetime:
    """Where Feast's materialize_incremental starts: the last materialized end, else now - ttl."""
    if view.most_recent_end_time is not None:
        return _utc(view.most_recent_end_time)
    # A zero TTL means "forever" to Feast, which then starts a year back.
    return datetime.now(UTC) - (view.ttl or timedelta(weeks=52))


def count_latest_rows(store: Any, view: Any, start: datetime, end: datetime) -> int:
    """Entities with a row in [start, end]: what materializing that window writes (one latest
    row per entity), counted through the offline store's own query, join keys only."""
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

    offline = get_offline_store_from_config(store.config.offline_store)
    source = view.batch_source
    job = offline.pull_latest_from_table_or_query(
        config=store.config,
        data_source=source,
        join_key_columns=view.join_keys,
        feature_name_columns=[],
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column or None,
        start_date=start,
        end_date=end,
    )
    return job.to_arrow().num_rows
