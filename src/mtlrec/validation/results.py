"""What the gate found, in words a person reads in one look.

A GX validation result becomes a list of `Failure`s: the expectation, its column, the rule it
encodes (the expectation's `notes` in the suite), what was observed against what was expected,
and a few offending rows with their keys. Failures that only follow from another one (every
check on a column that is missing or has the wrong dtype) are folded into their root cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from mtlrec.contract import ROW_INDEX

EXAMPLES_SHOWN = 3
VALUES_SHOWN = 5
# Failures of these expectations explain every other failure on the same column.
ROOT_CAUSES = ("expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list")
SCHEMA_CHECK = "expect_table_columns_to_match"
# "passed": all rows validated; "split": bad rows quarantined, the rest validated;
# "quarantined": the whole batch held back.
Status = Literal["passed", "split", "quarantined"]
UNEVALUATED = "could not be evaluated"


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None  # its column, or columns joined by ", " (a pair, a compound key)
    detail: str
    examples: list[str] = field(default_factory=list)
    rule: str | None = None  # why the expectation exists (its notes in the suite)
    rows: tuple[int, ...] = field(default=(), repr=False)  # offending file rows (row-level only)
    folded: int = 0  # failures that follow from this one, not shown separately

    @property
    def columns(self) -> list[str]:
        return self.column.split(", ") if self.column else []

    @property
    def row_level(self) -> bool:
        return bool(self.rows)

    def describe(self) -> str:
        where = f"({self.column})" if self.column else ""
        why = f" [{self.rule}]" if self.rule else ""
        shown = "; e.g. " + " | ".join(self.examples) if self.examples else ""
        more = f" (+{self.folded} checks on {self.column} that cannot run)" if self.folded else ""
        return f"{self.expectation}{where}{why}: {self.detail}{shown}{more}"

    def as_json(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "column": self.column,
            "rule": self.rule,
            "detail": self.detail,
            "examples": self.examples,
            "unexpected_rows": len(self.rows),
            "folded": self.folded,
        }


@dataclass(frozen=True)
class BatchOutcome:
    table: str
    batch_id: str
    rows: int
    failures: list[Failure]
    destination: str
    status: Status = "passed"
    rejected_rows: int = 0
    notes: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)  # Data Docs pages of its failed suites

    @property
    def passed(self) -> bool:
        return self.status != "quarantined"


@dataclass(frozen=True)
class ValidationReport:
    outcomes: list[BatchOutcome]
    data_docs: str | None
    ignored: list[str] = field(default_factory=list)  # landing files that are not batches

    @property
    def failed(self) -> list[BatchOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.passed]

    @property
    def split(self) -> list[BatchOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "split"]

    def summary(self) -> str:
        """One line for a run that passed."""
        line = f"validated {len(self.outcomes)} batches"
        if self.split:
            rejected = sum(outcome.rejected_rows for outcome in self.split)
            held = ", ".join(f"{o.table}/{o.batch_id}: {o.rejected_rows}" for o in self.split)
            line += f"; {rejected} rows quarantined ({held})"
        return f"{line}; validation report: {self.data_docs}{self._ignored_note()}"

    def _ignored_note(self) -> str:
        if not self.ignored:
            return ""
        return f"; ignored (not a parquet batch of a table): {', '.join(self.ignored)}"

    def message(self) -> str:
        lines = [
            f"validation failed: {len(self.failed)} of {len(self.outcomes)} batches quarantined"
        ]
        for outcome in self.failed:
            lines.append(f"  {outcome.table}/{outcome.batch_id} -> {outcome.destination}")
            lines.extend(f"    - {failure.describe()}" for failure in outcome.failures)
            lines.extend(f"    report: {page}" for page in outcome.pages)
        if self.data_docs:
            lines.append(f"  data docs: {self.data_docs}")
        if self.ignored:
            lines.append(f"  {self._ignored_note()[2:]}")
        return "\n".join(lines)


def failures_from(results: list[Any], frame: pd.DataFrame, keys: list[str]) -> list[Failure]:
    """Every failed expectation of the given suite results, unfolded."""
    return [
        _failure(item, frame, keys)
        for suite_result in results
        for item in suite_result.results
        if not item.success
    ]


def fold(failures: list[Failure], columns: list[str]) -> list[Failure]:
    """Show root causes: drop checks on absent columns (the column-set failure names them), and
    fold checks that could not even be evaluated on a column of the wrong dtype into that
    dtype failure. Real findings on such a column (nulls, values out of range) stay."""
    schema_failed = any(f.expectation.startswith(SCHEMA_CHECK) for f in failures)
    present = [f for f in failures if set(f.columns) <= set(columns) or not schema_failed]
    roots = {f.column: f for f in present if f.expectation in ROOT_CAUSES and f.column}
    shown, folded = [], dict.fromkeys(roots, 0)
    for failure in present:
        root = next((c for c in failure.columns if c in roots), None)
        if root and roots[root] is not failure and failure.detail.startswith(UNEVALUATED):
            folded[root] += 1
        else:
            shown.append(failure)
    return [
        Failure(**{**vars(f), "folded": folded[f.column]}) if roots.get(f.column) is f else f
        for f in shown
    ]


def _failure(item: Any, frame: pd.DataFrame, keys: list[str]) -> Failure:
    config = item.expectation_config
    kwargs = config.kwargs
    domain = [kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B")]
    column = ", ".join([c for c in domain if c] + list(kwargs.get("column_list") or [])) or None
    rule = _rule(config.notes)
    if item.exception_info and item.exception_info.get("raised_exception"):
        message = item.exception_info.get("exception_message") or "raised an exception"
        return Failure(config.type, column, f"{UNEVALUATED}: {message}", rule=rule)
    result = item.result or {}
    if "unexpected_count" in result:
        indexed = result.get("unexpected_index_list") or []
        rows = tuple(int(entry[ROW_INDEX]) for entry in indexed if isinstance(entry, dict))
        detail = f"{result['unexpected_count']} of {result.get('element_count', '?')} rows"
        detail += _expected(config.type, kwargs)
        examples = [_example(entry, frame, keys) for entry in indexed[:EXAMPLES_SHOWN]]
        return Failure(config.type, column, detail, examples, rule, rows)
    return Failure(config.type, column, _observed(config.type, result, kwargs), rule=rule)


def _rule(notes: str | list[str] | None) -> str | None:
    if isinstance(notes, list):
        return " ".join(notes) or None
    return notes or None


def _observed(kind: str, result: dict[str, Any], kwargs: dict[str, Any]) -> str:
    mismatched = (result.get("details") or {}).get("mismatched")
    if mismatched:
        return "; ".join(f"{which} {sorted(names)}" for which, names in mismatched.items())
    observed = result.get("observed_value")
    if isinstance(observed, dict) and "quantiles" in observed:
        return _quantiles(observed, kwargs.get("quantile_ranges") or {})
    return f"observed {_value(observed)}{_expected(kind, kwargs)}"


def _quantiles(observed: dict[str, Any], ranges: dict[str, Any]) -> str:
    parts = []
    for quantile, value, (low, high) in zip(
        observed["quantiles"], observed["values"], ranges.get("value_ranges", []), strict=False
    ):
        above = low is None or (value is not None and low <= value)
        below = high is None or (value is not None and value <= high)
        if value is None or not (above and below):
            parts.append(f"q{quantile} = {_value(value)} outside [{_value(low)}, {_value(high)}]")
    return "; ".join(parts) or f"observed {observed['values']}"


def _expected(kind: str, kwargs: dict[str, Any]) -> str:
    """The bound that was broken, from the expectation's (parameter-substituted) arguments."""
    if "value_set" in kwargs:
        return f"; expected {'not ' if '_not_' in kind else ''}in {_values(kwargs['value_set'])}"
    if "type_" in kwargs or "type_list" in kwargs:
        return f"; expected {kwargs.get('type_') or kwargs.get('type_list')}"
    if "threshold" in kwargs:
        return f"; expected < {_value(kwargs['threshold'])}"
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is None and high is None:
        return ""
    above = ">" if kwargs.get("strict_min") else ">="
    below = "<" if kwargs.get("strict_max") else "<="
    if high is None:
        return f"; expected {above} {_value(low)}"
    if low is None:
        return f"; expected {below} {_value(high)}"
    return f"; expected {above} {_value(low)} and {below} {_value(high)}"


def _values(values: Any) -> str:
    values = list(values or [])
    if len(values) > VALUES_SHOWN:  # e.g. the known ids: their number says enough
        return f"a set of {len(values)} values"
    return "{" + ", ".join(_value(v) for v in values) + "}"


def _example(entry: Any, frame: pd.DataFrame, keys: list[str]) -> str:
    if not isinstance(entry, dict):
        return f"row {entry}"
    row = int(entry[ROW_INDEX])
    found = {k: entry[k] for k in entry if k != ROW_INDEX}
    shown_keys = [k for k in keys if k in frame.columns and k not in found]
    key = ", ".join(f"{k}={_value(frame.at[row, k])}" for k in shown_keys)
    values = ", ".join(f"{k}={_value(v)}" for k, v in found.items())
    return f"row {row} ({key}): {values}" if key else f"row {row}: {values}"


def _value(value: Any) -> str:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):  # NaN, NaT, NA
        return "null"
    if isinstance(value, datetime):  # pd.Timestamp is a datetime
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.4g}"
    if hasattr(value, "item"):  # a NumPy scalar
        return _value(value.item())
    return str(value)
