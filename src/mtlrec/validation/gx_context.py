"""The file-backed Great Expectations context that lives in the repo under `gx/`.

Suites (`gx/expectations/*.json`) are data: a data engineer reviews and extends them there.
Each suite names its table in `meta.table`; a suite with `meta.needs_reference: true` holds the
checks against earlier batches (volume, drift) and runs only once a reference exists. This
module wires every suite to its table's in-memory dataframe asset and a checkpoint of the same
name, and builds the Data Docs.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlrec.contract import ROW_INDEX, TABLES

DATASOURCE = "landing"
BATCH_DEFINITION = "batch"
# COMPLETE lists every offending row (row-level quarantine needs them all); the named index
# identifies each by its row number in the landing file.
RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_INDEX]}
LOGGERS = ("great_expectations", "great_expectations.core", "great_expectations.data_context")


@dataclass(frozen=True)
class Suite:
    name: str
    table: str
    needs_reference: bool


def _quiet() -> None:
    # GX logs many info lines on import and on every run; we print our own summary instead.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def open_context(project_root: Path) -> Any:
    """Open the file context at `project_root/gx`, never a new empty one."""
    config = project_root / "gx" / "great_expectations.yml"
    if not config.is_file():
        raise FileNotFoundError(f"no Great Expectations context at {config.parent}")
    _quiet()
    import great_expectations as gx

    import mtlrec.validation.expectations  # noqa: F401  registers our expectation types

    return gx.get_context(mode="file", project_root_dir=str(project_root))


def wire_suites(context: Any) -> dict[str, list[Suite]]:
    """Every suite, by table, each with its checkpoint; fail if a table has none."""
    suites: dict[str, list[Suite]] = defaultdict(list)
    for suite in sorted(context.suites.all(), key=lambda s: s.name):
        table = (suite.meta or {}).get("table")
        if table not in TABLES:
            raise ValueError(f"suite {suite.name!r}: meta.table must be one of {TABLES}")
        if not _wired(context, suite.name):
            _wire(context, table, suite)
        suites[table].append(Suite(suite.name, table, bool(suite.meta.get("needs_reference"))))
    missing = [table for table in TABLES if not suites[table]]
    if missing:
        raise ValueError(f"no expectation suite for tables {missing} in gx/expectations")
    return dict(suites)


def _wired(context: Any, name: str) -> bool:
    """Whether the suite's checkpoint exists as we need it. Checked first because rewiring
    re-saves the suite, and the suite files are the data engineer's, not ours to rewrite."""
    from great_expectations.exceptions import DataContextError

    try:
        checkpoint = context.checkpoints.get(name)
    except DataContextError:
        return False
    definitions = checkpoint.validation_definitions
    formats = checkpoint.result_format == RESULT_FORMAT
    return formats and [d.suite.name for d in definitions] == [name]


def _wire(context: Any, table: str, suite: Any) -> None:
    """A whole-dataframe batch of the table's asset, a validation definition and a checkpoint,
    all named after the suite (written under gx/: commit them beside a new suite)."""
    import great_expectations as gx

    try:
        source = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(DATASOURCE)
    assets = {asset.name: asset for asset in source.assets}
    asset = assets.get(table) or source.add_dataframe_asset(table)
    names = {definition.name for definition in asset.batch_definitions}
    batch = (
        asset.get_batch_definition(BATCH_DEFINITION)
        if BATCH_DEFINITION in names
        else asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
    )
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=suite.name, data=batch, suite=suite)
    )
    context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=suite.name, validation_definitions=[definition], result_format=RESULT_FORMAT
        )
    )


def build_docs(context: Any, new_results: list[Any], keep: int) -> str | None:
    """Prune old results, render this run's pages and the index with local assets (no
    network: see data_docs); return the index path."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    from mtlrec.validation.data_docs import localize

    _prune(context.validation_results_store, keep)
    suites = [ExpectationSuiteIdentifier(name=suite.name) for suite in context.suites.all()]
    sites = context.build_data_docs(resource_identifiers=[*suites, *new_results])
    if not sites:
        return None
    index = Path(next(iter(sites.values())).removeprefix("file://")).resolve()
    localize(index.parent)
    return str(index)


def docs_page(context: Any, result_id: Any) -> str | None:
    """Where the Data Docs page of one validation result is (or will be) rendered."""
    sites = context.get_docs_sites_urls(resource_identifier=result_id, only_if_exists=False)
    url = sites[0].get("site_url") if sites else None
    return str(Path(url.removeprefix("file://")).resolve()) if url else None


def _prune(store: Any, keep: int) -> None:
    """Keep the `keep` newest results of each (suite, batch): the rebuild stays small and fast,
    and the index drops the pages of pruned results by itself."""
    by_batch: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for key in store.list_keys():
        by_batch[(key.expectation_suite_identifier.name, key.run_id.run_name)].append(key)
    for keys in by_batch.values():
        keys.sort(key=lambda key: str(key.run_id.run_time), reverse=True)
        for stale in keys[keep:]:
            store.remove_key(stale)
    base = getattr(store.store_backend, "full_base_directory", None)
    if base:  # the folders of pruned results, emptied: one per batch and run otherwise
        for folder in sorted(Path(base).rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
