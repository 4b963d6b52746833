"""The validation gate: every landing batch ends in exactly one place.

A batch that passes its table's suite is copied to `validated/<table>/<batch>.parquet`; one that
fails goes to `quarantine/<table>/<batch>/` with the original file and a `result.json` naming each
failed expectation. Any failure raises ValidationFailed after all batches were checked, so the
run stops before featurize: the online store and the champion model are never touched.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mtlrec.config import ValidateConfig
from mtlrec.validation.contract import ROW_KEYS, TABLES
from mtlrec.validation.gx_context import open_context

EXAMPLES_SHOWN = 3


class ValidationFailed(RuntimeError):
    """At least one batch failed validation; the message names every cause."""


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None
    detail: str
    examples: list[str] = field(default_factory=list)

    def describe(self) -> str:
        where = f"({self.column})" if self.column else ""
        shown = "; e.g. " + " | ".join(self.examples) if self.examples else ""
        return f"{self.expectation}{where}: {self.detail}{shown}"


@dataclass(frozen=True)
class BatchOutcome:
    table: str
    batch_id: str
    rows: int
    failures: list[Failure]
    destination: str

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class ValidationReport:
    outcomes: list[BatchOutcome]
    data_docs: str | None

    @property
    def failed(self) -> list[BatchOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.passed]

    def message(self) -> str:
        lines = [
            f"validation failed: {len(self.failed)} of {len(self.outcomes)} batches quarantined"
        ]
        for outcome in self.failed:
            lines.append(f"  {outcome.table}/{outcome.batch_id} -> {outcome.destination}")
            lines.extend(f"    - {failure.describe()}" for failure in outcome.failures)
        if self.data_docs:
            lines.append(f"  data docs: {self.data_docs}")
        return "\n".join(lines)


@dataclass
class _Known:
    """Keys accepted so far in this run: the targets of referential-integrity checks."""

    user_ids: set[int] = field(default_factory=set)
    item_ids: set[int] = field(default_factory=set)
    impression_ids: set[str] = field(default_factory=set)

    def parameters(self) -> dict[str, Any]:
        return {
            "known_user_ids": sorted(self.user_ids),
            "known_item_ids": sorted(self.item_ids),
            "known_impression_ids": sorted(self.impression_ids),
            "now": pd.Timestamp.now(tz="UTC").isoformat(),
        }

    def add(self, table: str, frame: pd.DataFrame) -> None:
        column, target = {
            "users": ("user_id", self.user_ids),
            "items": ("item_id", self.item_ids),
            "impressions": ("impression_id", self.impression_ids),
        }.get(table, (None, None))
        if column is not None:
            target.update(frame[column].tolist())


def run(
    config: ValidateConfig, landing: Path, validated: Path, quarantine: Path, project_root: Path
) -> ValidationReport:
    """Validate every landing batch; raise ValidationFailed if any was quarantined."""
    context = open_context(project_root)
    known = _Known()
    outcomes = []
    for table in TABLES:
        for batch_file in sorted((landing / table).glob("*.parquet")):
            outcome, frame = _check(context, table, batch_file, known)
            outcome = _file(outcome, batch_file, validated, quarantine)
            if outcome.passed:
                known.add(table, frame)
            outcomes.append(outcome)
    report = ValidationReport(outcomes=outcomes, data_docs=_build_docs(context))
    if report.failed:
        raise ValidationFailed(report.message())
    return report


def _check(
    context: Any, table: str, batch_file: Path, known: _Known
) -> tuple[BatchOutcome, pd.DataFrame]:
    batch_id = batch_file.stem
    try:
        frame = pd.read_parquet(batch_file)
    except Exception as error:  # any unreadable file is a failed batch, never a crash
        failure = Failure("readable_parquet", None, f"cannot read {batch_file.name}: {error}")
        return BatchOutcome(table, batch_id, 0, [failure], ""), pd.DataFrame()
    result = context.checkpoints.get(table).run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=known.parameters(),
        run_id=_run_id(table, batch_id),
    )
    failures = [
        _failure(item, ROW_KEYS[table])
        for validation in result.run_results.values()
        for item in validation.results
        if not item.success
    ]
    return BatchOutcome(table, batch_id, len(frame), failures, ""), frame


def _run_id(table: str, batch_id: str) -> Any:
    from great_expectations.core.run_identifier import RunIdentifier

    return RunIdentifier(run_name=f"{table}-{batch_id}")


def _failure(item: Any, keys: list[str]) -> Failure:
    config = item.expectation_config
    column = config.kwargs.get("column") or config.kwargs.get("column_A")
    if item.exception_info and item.exception_info.get("raised_exception"):
        message = item.exception_info.get("exception_message") or "raised an exception"
        return Failure(config.type, column, f"could not be evaluated: {message}")
    result = item.result or {}
    if "unexpected_count" in result:
        detail = (
            f"{result['unexpected_count']} of {result.get('element_count', '?')} rows unexpected"
        )
        examples = [_example(row, keys) for row in (result.get("unexpected_index_list") or [])]
        return Failure(config.type, column, detail, examples[:EXAMPLES_SHOWN])
    return Failure(config.type, column, f"observed {result.get('observed_value')!r}")


def _example(row: Any, keys: list[str]) -> str:
    if not isinstance(row, dict):
        return f"row {row}"
    key = ", ".join(f"{name}={row.get(name)}" for name in keys if name in row)
    rest = ", ".join(f"{name}={value}" for name, value in row.items() if name not in keys)
    return f"{key}: {rest}" if rest else key


def _file(
    outcome: BatchOutcome, batch_file: Path, validated: Path, quarantine: Path
) -> BatchOutcome:
    """Put the batch in exactly one place: validated/ if it passed, else quarantine/."""
    held = quarantine / outcome.table / outcome.batch_id
    accepted = validated / outcome.table / batch_file.name
    if outcome.passed:
        accepted.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(batch_file, accepted)
        shutil.rmtree(held, ignore_errors=True)  # a fixed batch leaves quarantine
        return BatchOutcome(**{**asdict(outcome), "destination": str(accepted)})
    accepted.unlink(missing_ok=True)
    held.mkdir(parents=True, exist_ok=True)
    shutil.copy2(batch_file, held / batch_file.name)
    summary = {
        "table": outcome.table,
        "batch_id": outcome.batch_id,
        "source": str(batch_file),
        "rows": outcome.rows,
        "failures": [asdict(failure) for failure in outcome.failures],
    }
    (held / "result.json").write_text(json.dumps(summary, indent=2, default=str))
    failures = [Failure(**failure) for failure in summary["failures"]]
    return BatchOutcome(outcome.table, outcome.batch_id, outcome.rows, failures, str(held))


def _build_docs(context: Any) -> str | None:
    context.build_data_docs()
    sites = context.get_docs_sites_urls()
    if not sites:
        return None
    return str(Path(sites[0]["site_url"].removeprefix("file://")).resolve())
