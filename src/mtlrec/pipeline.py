"""The pipeline's steps as the Airflow DAGs call them: one function per task.

Every stage of dvc.yaml runs as `dvc repro --single-item <stage>` (`run_stage`), so each DAG
run is recorded in dvc.lock exactly as `dvc repro` would record it, and the finished run is
saved as a DVC experiment named after the DAG run (`record_run`). Every DAG task of a stage
calls `stage_task` (so `validate` is one task body in both DAGs that validate). Only the hourly
materialization runs outside DVC: it loads a window of time, which no stage of dvc.yaml does.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mtlrec.config import ConfigError, load_params
from mtlrec.layout import Layout

if TYPE_CHECKING:
    from mtlrec.evaluation.decision import Decision

VALIDATE_STAGE = "validate"
VALIDATION_FAILED = "validation failed:"  # how `mtlrec validate` begins its report of a failure


def stage_task(root: Path, stage: str, force: bool = False) -> str:
    """What a DAG task runs for a stage of dvc.yaml, in every DAG (`validate` in both
    `mtl_retraining` and `landing_validation`): `run_stage`, whose output it returns, logged as
    one INFO line of outcome (`stage_outcome`) with DVC's whole output at DEBUG; a batch that
    failed validation fails the task at once, without a retry (quarantined data needs a
    person), with the validation report as its message."""
    from airflow.sdk.exceptions import AirflowFailException

    from mtlrec.validation.gate import ValidationFailed

    log = logging.getLogger(__name__)
    started = time.monotonic()
    try:
        output = run_stage(root, stage, force=force)
    except ValidationFailed as error:
        log.error("%s", error)  # the report, in the task's log
        raise AirflowFailException(str(error)) from None
    log.info("%s", stage_outcome(stage, output, time.monotonic() - started))
    log.debug("%s", output)  # AIRFLOW__LOGGING__LOGGING_LEVEL=DEBUG shows it
    return output


def materialize(root: Path, end: datetime, start: datetime | None) -> str:
    """Load [start, end] into the online store (start None: incremental from each view's last
    materialized end). Upserts: a rerun changes nothing. The summary goes to reports/, not to
    the materialize stage's output: a window is not what that stage loads."""
    from mtlrec.features import store

    layout = Layout(root)
    summary = store.materialize(
        layout.feature_repo,
        end=end,
        start=start,
        summary_file=layout.hourly_materialize_summary,
        timed=True,
    )
    return str(summary)


@contextmanager
def dvc_lock(root: Path) -> Iterator[None]:
    """The workspace lock (`mtlrec.workspace`): DVC commands and stages one at a time; two
    concurrent `dvc repro` fail on DVC's own lock."""
    from mtlrec.workspace import locked

    with locked(root, "an Airflow task"):
        yield


# DVC's record of which command reads and writes which paths, rewritten in place.
DVC_RWLOCK = Path(".dvc") / "tmp" / "rwlock"


def _unreadable(path: Path) -> bool:
    """The file exists and is not JSON."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (json.JSONDecodeError, UnicodeDecodeError):
        return True
    return False


def set_aside_broken_rwlock(root: Path, settle: float = 0.2) -> Path | None:
    """Move DVC's rwlock file aside when it is not JSON; return where it went.

    DVC rewrites `.dvc/tmp/rwlock` in place (truncate, then write) whenever a command takes or
    releases its stages' paths. A command killed between the two, as a task's `dvc repro` is
    when its worker dies with the scheduler, leaves the file empty or cut short, and every later
    DVC command in the project then fails on it ("JSON structure is corrupted"): the task's
    retry could never succeed. Called under the workspace lock, so no DVC command of ours is
    writing it; a file that still does not parse `settle` seconds later is no other process's
    write in progress either. It is renamed, not deleted (what it held is kept for a person),
    and DVC starts a new one."""
    path = Path(root) / DVC_RWLOCK
    if not _unreadable(path):
        return None
    time.sleep(settle)
    if not _unreadable(path):
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    aside = path.with_name(f"{path.name}.broken-{stamp}")
    try:
        path.rename(aside)
    except FileNotFoundError:  # removed meanwhile by a DVC command outside ours
        return None
    logging.getLogger(__name__).warning(
        "DVC's lock record %s was cut short by a killed DVC command; moved it to %s",
        path,
        aside,
    )
    return aside


def dvc(root: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run `dvc ARGS` in the project under the workspace lock (its stages run under it too);
    fail with DVC's own output. An rwlock file that a killed DVC command left cut short is
    set aside first (`set_aside_broken_rwlock`)."""
    executable = Path(sys.executable).with_name("dvc")
    with dvc_lock(root):
        set_aside_broken_rwlock(root)
        path = f"{executable.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        child_env = {**os.environ, **(env or {}), "PATH": path}
        done = subprocess.run(
            [str(executable), *args], cwd=root, capture_output=True, text=True, env=child_env
        )
    output = f"{done.stdout}\n{done.stderr}".strip()
    if done.returncode != 0:
        raise RuntimeError(f"`dvc {' '.join(args)}` failed (exit {done.returncode}):\n{output}")
    return output


def run_stage(
    root: Path, stage: str, force: bool = False, env: Mapping[str, str] | None = None
) -> str:
    """Reproduce one dvc stage only (its upstream ran as earlier DAG tasks). A validation that
    quarantined a batch raises ValidationFailed with the stage's report."""
    from mtlrec.stages import DVC_STAGES, make_empty_inputs

    declared = {declared.dvc_name: declared for declared in DVC_STAGES}
    if stage in declared:  # e.g. the feedback zone before any session was logged
        make_empty_inputs(declared[stage], root)
    try:
        return dvc(root, "repro", "--single-item", *(["--force"] if force else []), stage, env=env)
    except RuntimeError as error:
        text = str(error)
        if stage == VALIDATE_STAGE and VALIDATION_FAILED in text:
            from mtlrec.validation.gate import ValidationFailed

            report = text[text.index(VALIDATION_FAILED) :].split("\nERROR:")[0]
            raise ValidationFailed(report.strip()) from None
        raise


# DVC's own lines around a stage's output (and progress bars): not the stage's outcome.
DVC_CHATTER = (
    "Running stage",
    "> ",
    "Updating lock file",
    "To track the changes with git",
    "git add",
    "To enable auto staging",
    "dvc config core.autostage",
    "Use `dvc push`",
    "WARNING:",
    "Stage '",
    "Data and pipelines are up to date",
)


def stage_outcome(stage: str, output: str, seconds: float) -> str:
    """One line for a stage task's log at INFO: ran (with the last line the stage printed,
    its result), skipped as unchanged, or restored from DVC's run cache; DVC's full output is
    for DEBUG."""
    if "didn't change, skipping" in output:
        return f"{stage}: unchanged, skipped ({seconds:.1f} s)"
    if "is cached - skipping run" in output:
        return f"{stage}: restored from DVC's run cache ({seconds:.1f} s)"
    own = [
        line.strip()
        for line in output.replace("\r", "\n").splitlines()
        if line.strip() and not line.strip().startswith(DVC_CHATTER) and "it/s]" not in line
    ]
    result = f": {own[-1]}" if own else ""
    return f"{stage}: ran in {seconds:.1f} s{result}"


# --- One DAG run = one DVC experiment -------------------------------------------------------

# The DAG form's fields and the params.yaml keys they set.
RUN_PARAMS = {
    "bottom": "model.bottom",
    "epochs": "train.epochs",
    "loss_weighting": "train.loss_weighting",
    "force_promote": "gate.force_promote",
    "online_test": "gate.online_test",
}
# Read by `mtlrec promote` (evaluation/promote.py) into the model version's metadata; spelled
# out here so the DAG's tasks need not import torch to name it (a test keeps the two equal).
RUN_ID_ENV = "MTLREC_RUN_ID"


def set_params(root: Path, values: Mapping[str, Any]) -> dict[str, Any]:
    """Write the run's form values into params.yaml, where the DVC stages read them (what
    `dvc exp run --set-param` does, through DVC's own YAML editor: comments and layout stay),
    for this run only: the file as it was is kept aside first and `restore_params` (the DAG's
    teardown) writes it back byte for byte. The result must be valid params; otherwise
    params.yaml is left as it was and ConfigError names the bad key."""
    from dvc.utils.serialize import modify_yaml

    from mtlrec.registry import write_atomic

    layout = Layout(root)
    overrides = {RUN_PARAMS[name]: value for name, value in values.items() if name in RUN_PARAMS}
    with dvc_lock(root):
        if layout.params_before_run.is_file():
            # A retry of this task, or a run whose teardown never ran: start from the file
            # as committed, not from a run's values.
            write_atomic(layout.params, layout.params_before_run.read_text())
        before = layout.params.read_text()
        current = yaml.safe_load(before)
        if all(_dig_raw(current, key) == value for key, value in overrides.items()):
            return overrides  # already so: leave the file (and its formatting) untouched
        layout.params_before_run.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(layout.params_before_run, before)
        try:
            with modify_yaml(layout.params) as data:
                for dotted, value in overrides.items():
                    *parents, leaf = dotted.split(".")
                    section = data
                    for part in parents:
                        section = section[part]
                    section[leaf] = value
            load_params(layout.params)
        except (ConfigError, KeyError, TypeError) as error:
            layout.params.write_text(before)
            layout.params_before_run.unlink()
            raise ConfigError(f"run params {dict(values)} rejected: {error}") from None
    return overrides


def restore_params(root: Path) -> bool:
    """params.yaml back as it was before the run's form values (a run's choice is that run's
    only); True when there was something to restore."""
    from mtlrec.registry import write_atomic

    layout = Layout(root)
    with dvc_lock(root):
        if not layout.params_before_run.is_file():
            return False
        write_atomic(layout.params, layout.params_before_run.read_text())
        layout.params_before_run.unlink()
    return True


def experiment_name(run_id: str) -> str:
    """A DVC experiment (git ref) name for an Airflow run id: `manual__2026-01-02T03:04:05+00:00`
    becomes `manual__2026-01-02T03-04-05-00-00`."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", run_id).strip("-")
    if not name:
        raise ValueError(f"run id {run_id!r} gives no experiment name")
    return name


GATE_STAGE = "promote"  # the dvc stage that gates, registers and moves the production alias
REPORT_STAGE = "report"  # the last dvc stage: reports/metrics.md from the run's metric files


def gate(root: Path, run_id: str) -> Decision:
    """Run the champion/challenger gate (the `promote` dvc stage): it registers the challenger
    and moves the production alias only if the gate passes. Forced, so every run gets its own
    decision even when the challenger did not change. A retry after a crash finishes the same
    promotion: the registry reuses the version the first try registered."""
    from mtlrec.evaluation.decision import Decision
    from mtlrec.registry import Registry

    layout = Layout(root)
    registry = Registry(layout.registry)
    already = registry.version_of_run(run_id)
    if already is not None and already == registry.production():
        reason = f"{already} was already promoted by run {run_id}"
        return Decision(True, [reason], version=already, champion_before=already)
    run_stage(root, GATE_STAGE, force=True, env={RUN_ID_ENV: run_id})
    report = json.loads(layout.gate_report.read_text())
    return Decision(
        bool(report["promoted"]),
        list(report["reasons"]),
        version=report["version"],
        champion_before=report.get("champion_before"),
    )


def production(root: Path) -> dict[str, Any] | None:
    """The production version and the run that made it (None: no champion yet)."""
    from mtlrec.registry import Registry

    registry = Registry(Layout(root).registry)
    version = registry.production()
    if version is None:
        return None
    return {"version": version, "run_id": registry.metadata(version).get("run_id")}


def summarize(root: Path, run_id: str, experiment: str) -> dict[str, Any]:
    """What a run did: its experiment, params, gate decision, production, challenger metrics."""
    from mtlrec.evaluation.report import headline

    layout = Layout(root)
    report = json.loads(layout.gate_report.read_text())
    params = load_params(layout.params)
    return {
        "run_id": run_id,
        "experiment": experiment,
        "params": {name: _dig(params, key) for name, key in RUN_PARAMS.items()},
        "promoted": report["promoted"],
        "version": report["version"],
        "reasons": report["reasons"],
        "production": production(root),
        "serving": serving(root),
        "online_test": online_result(root),
        "metrics": {
            task: {name: value for name, value in values.items() if not name.startswith("oracle_")}
            for task, values in json.loads(layout.challenger_metrics.read_text()).items()
        },
        "table": headline(layout.metrics_report),
    }


def online_result(root: Path) -> dict[str, Any] | None:
    """The online test's verdict and headline numbers, as the run summary reports them."""
    file = Layout(root).online_metrics
    if not file.is_file():
        return None
    report = json.loads(file.read_text())
    shown = {"verdict": report["verdict"], "champion": report.get("champion")}
    if report.get("applicable"):
        shown["interleaving"] = report["interleaving"]
        shown["ab"] = {name: report["ab"][name] for name in ("purchases_per_1000", "ctr_at_k")}
    return shown


SERVE_URL_ENV = "MTLREC_SERVE_URL"  # where `mtlrec serve` runs, e.g. http://mtlrec-serve:8000


def serving(root: Path, timeout: float = 5.0) -> dict[str, Any]:
    """The version the ranking service answers with (asked at MTLREC_SERVE_URL when set; it
    follows the production alias within `serve.reload_seconds`)."""
    import httpx

    url = os.environ.get(SERVE_URL_ENV)
    champion = production(root)
    follows = champion["version"] if champion else None
    if not url:
        return {"url": None, "version": None, "follows": follows}
    try:
        state = httpx.get(f"{url.rstrip('/')}/readyz", timeout=timeout).json()
    except (httpx.HTTPError, ValueError) as error:
        return {"url": url, "version": None, "follows": follows, "error": str(error)}
    return {"url": url, "version": state.get("version"), "follows": follows,
            "error": state.get("last_error")}  # fmt: skip


def _dig_raw(raw: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        raw = raw.get(part) if isinstance(raw, dict) else None
    return raw


def _dig(params: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        params = getattr(params, part)
    return params


def record_run(root: Path, run_id: str, stages: Iterable[str]) -> str:
    """Save the workspace as the DVC experiment of this run: params, dvc.lock (every data and
    model hash) and the metrics, so `dvc exp show` lists the run by name and `dvc exp apply`
    restores it. Only `stages`, the ones the run ran, are committed to dvc.lock; `--force`
    makes a retried task replace, not duplicate, the experiment."""
    _require_git_commit(root)
    name = experiment_name(run_id)
    include = [path for path in uncached_outputs(root) if (root / path).exists()]
    flags = [arg for path in include for arg in ("--include-untracked", path)]
    message = f"Airflow run {run_id}"
    dvc(root, "exp", "save", "--force", "--name", name, "-m", message, *flags, *stages)
    return name


def uncached_outputs(root: Path) -> list[str]:
    """Outputs, metrics and plots that dvc.yaml keeps in git (`cache: false`), e.g.
    metrics/*.json: a saved experiment holds them only when named explicitly."""
    stages = yaml.safe_load(Layout(root).dvc_yaml.read_text()).get("stages", {})
    found = []
    for stage in stages.values():
        for entry in [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]:
            if isinstance(entry, dict):
                found += [path for path, opts in entry.items() if opts.get("cache") is False]
    return found


def _require_git_commit(root: Path) -> None:
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "HEAD"], cwd=root, capture_output=True
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{root} has no git commit: a DVC experiment is saved relative to one. "
            "Commit the project (git commit) before running the DAG."
        )


def experiment(root: Path, name: str) -> dict[str, Any] | None:
    """The experiment `name` as `dvc exp show --json` lists it (params, metrics, deps)."""
    shown = json.loads(dvc(root, "exp", "show", "--json", "--no-pager"))
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                if rev.get("name") == name:
                    return rev["data"]
    return None


# --- Windows of time --------------------------------------------------------------------------


def incremental_window(
    interval_start: datetime,
    interval_end: datetime,
    overlap: timedelta,
    now: datetime | None = None,
) -> tuple[datetime, datetime]:
    """A scheduled materialization's window: its data interval, reaching `overlap` back into the
    previous one for events that landed late (upserts make the overlap harmless), never past now
    (Feast would remember a future end and skip data later)."""
    now = now or datetime.now(UTC)
    return interval_start - overlap, min(interval_end, now)


# --- New data ---------------------------------------------------------------------------------


def pending_batches(root: Path) -> list[str]:
    """Landing batches not yet filed by validation (see `validation.filing.pending`)."""
    from mtlrec.validation.filing import pending

    layout = Layout(root)
    found = pending(layout.landing, layout.validated, layout.quarantine)
    return found + pending(layout.feedback, layout.validated, layout.quarantine)
