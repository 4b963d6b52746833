"""The file-backed Great Expectations context that lives in the repo under `gx/`.

Suites (`gx/expectations/<table>.json`) are data: a data engineer reviews and extends them
there. This module only wires each suite to an in-memory dataframe asset and a checkpoint.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mtlrec.validation.contract import ROW_KEYS, TABLES

DATASOURCE = "landing"


def _quiet() -> None:
    # GX logs many info lines on import and on every run; we print our own summary instead.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in (
        "great_expectations",
        "great_expectations.core",
        "great_expectations.data_context",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def open_context(project_root: Path) -> Any:
    """Open the file context at `project_root/gx` and make sure every table has a checkpoint."""
    _quiet()
    import great_expectations as gx

    context = gx.get_context(mode="file", project_root_dir=str(project_root))
    source = context.data_sources.add_or_update_pandas(DATASOURCE)
    for table in TABLES:
        _wire_table(context, source, table)
    return context


def _wire_table(context: Any, source: Any, table: str) -> None:
    import great_expectations as gx

    existing = {asset.name for asset in source.assets}
    asset = source.get_asset(table) if table in existing else source.add_dataframe_asset(table)
    batch_names = {definition.name for definition in asset.batch_definitions}
    batch = (
        asset.get_batch_definition("batch")
        if "batch" in batch_names
        else asset.add_batch_definition_whole_dataframe("batch")
    )
    suite = context.suites.get(table)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=table, data=batch, suite=suite)
    )
    context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=table,
            validation_definitions=[definition],
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": ROW_KEYS[table],
            },
        )
    )
