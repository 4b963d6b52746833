"""The validation gate: every landing batch ends in exactly one place.

Batches are checked table by table in contract order (users, items, impressions, judgments;
foreign keys point backwards) and in date order within a table, each against:

1. readability (an empty or corrupt file fails, it never crashes the run);
2. the ingest ledger (the same content under another batch id is a duplicate);
3. its table's suites in `gx/expectations/`, with suite parameters computed from the batches
   accepted before it (known keys, and the reference for volume and drift checks).

A passing batch goes to `validated/`, a failing one to `quarantine/` with its result (see
`filing`). With `row_policy: split`, rows that break row-level expectations are quarantined with
their reason and the rest goes on. Any quarantined batch raises ValidationFailed after all were
checked, so the run stops before featurize: the online store and the champion are not touched.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mtlrec.config import ValidateConfig
from mtlrec.contract import ROW_INDEX, ROW_KEYS, TABLES
from mtlrec.errors import UserError
from mtlrec.names import safe_batch_id, shown
from mtlrec.validation.filing import Verdict, file_batch
from mtlrec.validation.gx_context import Suite, build_docs, docs_page, open_context, wire_suites
from mtlrec.validation.ledger import Ledger, content_digest
from mtlrec.validation.reference import (
    KnownKeys,
    TableReference,
    batch_window,
    time_parameters,
)
from mtlrec.validation.results import (
    BatchOutcome,
    Failure,
    Status,
    ValidationReport,
    failures_from,
    fold,
)

__all__ = ["BatchOutcome", "Failure", "ValidationFailed", "ValidationReport", "run"]
LEDGER_NAME = "ingest_ledger.json"


class ValidationFailed(UserError, RuntimeError):
    """At least one batch failed validation; the message names every cause."""


def run(
    config: ValidateConfig,
    landing: Path,
    validated: Path,
    quarantine: Path,
    project_root: Path,
    *,
    ledger: Path | None = None,
    now: datetime | None = None,
    feedback: Path | None = None,
) -> ValidationReport:
    """Validate every landing batch; raise ValidationFailed if any was quarantined.

    `feedback` is the zone served sessions are logged into (`online.feedback`), checked beside
    the landing zone, each table's batches in date order over both. `ledger` defaults to
    `ingest_ledger.json` beside the quarantine folder (both outlive the validated folder, which
    DVC rebuilds each run); `now` bounds every timestamp.
    """
    context = open_context(project_root)
    zones = [landing, *([feedback] if feedback is not None else [])]
    batches = [
        (table, file)
        for table in TABLES
        for file in sorted(
            (f for zone in zones for f in (zone / table).glob("*.parquet")), key=lambda f: f.name
        )
    ]
    landed = {f"{table}/{safe_batch_id(file.stem)}" for table, file in batches}
    gate = _Gate(
        config=config,
        context=context,
        suites=wire_suites(context),
        ledger=Ledger.load(ledger or quarantine.parent / LEDGER_NAME, landed),
        now=now or datetime.now(UTC),
    )
    outcomes = [gate.check(table, file, validated, quarantine) for table, file in batches]
    gate.ledger.save()
    docs = build_docs(context, gate.result_ids, config.keep_results)
    ignored = [name for zone in zones for name in unknown_files(zone)]
    report = ValidationReport(outcomes, docs, ignored=ignored)
    if report.failed:
        raise ValidationFailed(report.message())
    return report


@dataclass
class _Gate:
    """One run's state: what was accepted so far is the reference for what comes next."""

    config: ValidateConfig
    context: Any
    suites: dict[str, list[Suite]]
    ledger: Ledger
    now: datetime
    known: KnownKeys = field(default_factory=KnownKeys)
    # Per table and source (a batch id's suffix: `served` for logged sessions): a model's
    # top-10 lists have another click rate and volume than the shop's history, and are
    # compared with earlier batches of their own kind.
    references: dict[tuple[str, str], TableReference] = field(default_factory=dict)
    result_ids: list[Any] = field(default_factory=list)

    def _reference(self, table: str, batch_id: str) -> TableReference:
        return self.references.setdefault((table, batch_source(batch_id)), TableReference())

    def check(self, table: str, source: Path, validated: Path, quarantine: Path) -> BatchOutcome:
        verdict, frame = self._judge(table, source)
        destination = file_batch(verdict, frame, validated, quarantine)
        rejected = len(frame)
        if verdict.status != "quarantined":
            good = frame.drop(index=verdict.bad_rows.index) if verdict.status == "split" else frame
            self._accept(verdict, good)
            rejected = len(frame) - len(good)
        return BatchOutcome(
            table=table,
            batch_id=verdict.batch_id,
            rows=len(frame),
            failures=verdict.failures,
            destination=destination,
            status=verdict.status,
            rejected_rows=rejected,
            notes=verdict.notes,
            pages=verdict.failed_pages or [],
        )

    def _accept(self, verdict: Verdict, good: pd.DataFrame) -> None:
        self.known.add(verdict.table, good)
        self._reference(verdict.table, verdict.batch_id).add(good)
        key = f"{verdict.table}/{verdict.batch_id}"
        self.ledger.accept(key, verdict.digest or "", len(good))

    def _judge(self, table: str, source: Path) -> tuple[Verdict, pd.DataFrame]:
        batch_id = safe_batch_id(source.stem)

        def reject(failure: Failure, digest: str | None = None) -> Verdict:
            return Verdict(table, batch_id, source, digest, "quarantined", [failure], [])

        frame, raw, unreadable = _read(source)
        digest = hashlib.sha256(raw).hexdigest() if unreadable else content_digest(frame, raw)
        if batch_id != source.stem:  # the name never becomes a path: held under a safe id
            detail = (
                f"the file name {shown(source.name)} is not a batch id (YYYY-MM-DD.parquet, "
                f"letters, digits, _ and - only); held as {batch_id}"
            )
            return reject(Failure("batch_id_is_date", None, detail), digest), frame
        if unreadable:
            return reject(unreadable, digest), frame
        duplicate = self.ledger.duplicate_of(f"{table}/{batch_id}", digest)
        if duplicate:
            failure = Failure("unique_content", None, f"same rows as {duplicate}")
            return reject(failure, digest), frame
        window = batch_window(batch_id)
        if window is None:
            detail = f"{batch_id!r} is not a date (YYYY-MM-DD), the day its rows must fall in"
            return reject(Failure("batch_id_is_date", None, detail), digest), frame
        return self._verdict(table, source, digest, frame, window), frame

    def _verdict(
        self, table: str, source: Path, digest: str, frame: pd.DataFrame, window: dict[str, str]
    ) -> Verdict:
        results, notes, pages = self._validate(table, source.stem, frame, window)
        found = failures_from(results, frame, ROW_KEYS[table])
        failed_pages = [page for result, page in zip(results, pages, strict=True)
                        if page and not result.success]  # fmt: skip
        status, bad_rows, extra = _row_policy(self.config, found, len(frame))
        return Verdict(
            table=table,
            batch_id=source.stem,
            source=source,
            digest=digest,
            status=status,
            failures=fold(found, list(frame.columns)) + extra,
            notes=notes,
            bad_rows=bad_rows,
            gx_results=[result.to_json_dict() for result in results] if found else None,
            docs_pages=[page for page in pages if page],
            failed_pages=failed_pages,
        )

    def _validate(
        self, table: str, batch_id: str, frame: pd.DataFrame, window: dict[str, str]
    ) -> tuple[list[Any], list[str], list[str | None]]:
        """Run every suite of the table that can run; note the ones that cannot yet."""
        from great_expectations.core.run_identifier import RunIdentifier

        reference = self._reference(table, batch_id)
        shared = {**time_parameters(self.now), **window, **self.known.parameters(frame)}
        run_id = RunIdentifier(run_name=f"{table}-{batch_id}", run_time=self.now)
        results, notes, pages = [], [], []
        for suite in self.suites[table]:
            if suite.needs_reference and reference.empty:
                notes.append(f"{suite.name} skipped: no earlier accepted {table} batch to compare")
                continue
            extra = reference.parameters(self.config, len(frame)) if suite.needs_reference else {}
            outcome = self.context.checkpoints.get(suite.name).run(
                batch_parameters={"dataframe": frame},
                expectation_parameters={**shared, **extra},
                run_id=run_id,
            )
            for result_id, result in outcome.run_results.items():
                self.result_ids.append(result_id)
                results.append(result)
                pages.append(docs_page(self.context, result_id))
        return results, notes, pages  # a page per result (None: no site renders it)


def batch_source(batch_id: str) -> str:
    """What kind of batch it is: the first word of its suffix (`2026-01-15_served-v3`:
    `served`), empty for a plain day."""
    _, _, suffix = batch_id.partition("_")
    return suffix.split("-", 1)[0]


def unknown_files(landing: Path) -> list[str]:
    """What sits in the landing zone but is no batch: a file that is not parquet in a table's
    folder, or anything beside the table folders. Reported, never validated or moved."""
    if not landing.is_dir():
        return []
    found = []
    for entry in sorted(landing.iterdir()):
        if entry.name not in TABLES:
            found.append(entry.name + ("/" if entry.is_dir() else ""))
        elif entry.is_dir():
            found += [
                f"{entry.name}/{child.name}"
                for child in sorted(entry.iterdir())
                if not (child.is_file() and child.suffix == ".parquet")
            ]
    return [shown(name)[1:-1] for name in found]


def _read(source: Path) -> tuple[pd.DataFrame, bytes, Failure | None]:
    """The batch with its file row as the named index, or why it cannot be read."""
    raw = source.read_bytes()
    if not raw:
        return pd.DataFrame(), raw, Failure("readable_parquet", None, "the file is empty (0 bytes)")
    try:
        frame = pd.read_parquet(io.BytesIO(raw))
    except Exception as error:  # any unreadable file is a failed batch, never a crash
        detail = f"cannot read {source.name}: {error}"
        return pd.DataFrame(), raw, Failure("readable_parquet", None, detail)
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        frame = frame.reset_index()  # an index stored in the file is data like any column
    return frame.reset_index(drop=True).rename_axis(ROW_INDEX), raw, None


def _row_policy(
    config: ValidateConfig, found: list[Failure], rows: int
) -> tuple[Status, pd.Series | None, list[Failure]]:
    """passed, split (with each bad row's reason) or quarantined."""
    if not found:
        return "passed", None, []
    if config.row_policy == "fail" or not all(failure.row_level for failure in found):
        return "quarantined", None, []
    labels = [(row, _label(failure)) for failure in found for row in failure.rows]
    reasons = pd.DataFrame(labels, columns=[ROW_INDEX, "reason"]).groupby(ROW_INDEX)["reason"]
    bad_rows = reasons.agg(lambda r: "; ".join(dict.fromkeys(r))).rename("reason")
    if len(bad_rows) > config.split_max_share * rows:
        detail = (
            f"{len(bad_rows)} of {rows} rows broke row-level rules, more than split_max_share "
            f"{config.split_max_share:g}: a broken source, not a few bad rows"
        )
        return "quarantined", None, [Failure("row_policy_split", None, detail)]
    return "split", bad_rows, []


def _label(failure: Failure) -> str:
    where = f"({failure.column})" if failure.column else ""
    return f"{failure.expectation}{where}" + (f" [{failure.rule}]" if failure.rule else "")
