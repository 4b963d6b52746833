"""Every stage declared once: its command, options, inputs, outputs, params and code.

`mtlrec --help` (cli.py), `dvc.yaml` and the Airflow DAG all follow from `STAGES`:

- the CLI builds one subcommand per stage from its `Arg`s (help and default shown);
- `dvc.yaml` is rendered by `render_dvc_yaml` (`mtlrec dvc-yaml` writes it; a test fails when
  the file and the declarations disagree): `cmd` from the args, `deps` from the input args, the
  stage's non-code inputs and the files of every package module its code imports (read from
  the import graph, so a new import is a new dependency), `params` the keys it reads, `outs`,
  `metrics` and plots from the output args;
- the DAG runs the DVC stages one task each (`dvc repro --single-item <stage>`).

Argument parsing (cli.py, this module) is no dependency of the stages: a change to one stage's
declaration shows in dvc.yaml itself (its cmd, deps or outs), which DVC tracks.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mtlrec.config import Params
from mtlrec.layout import DEFAULT as L
from mtlrec.layout import Layout

Role = Literal["dep", "out", "persist", "uncached", "metric", "plot", "state", "option"]
PACKAGE_ROOT = Path(__file__).resolve().parent  # src/mtlrec
SOURCE_ROOT = PACKAGE_ROOT.parent  # src
FULL_LOAD = "2000-01-01"  # before any event: materialize loads everything
# Modules every stage process imports to parse its arguments: not a stage's code (see above).
CLI_MODULES = ("mtlrec.cli", "mtlrec.stages", "mtlrec.workspace")


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Arg:
    """One option of a stage. `role` says what DVC makes of it: an input (`dep`), an output
    (`out`; `persist`: not deleted before a rerun; `uncached`: kept in git; `metric`, `plot`),
    a path the stage keeps state in that DVC does not track (`state`: caches, checkpoints, the
    registry), or an option that dvc.yaml leaves at its default (`option`)."""

    flag: str
    help: str
    default: Any = None
    role: Role = "state"
    type: Callable[[str], Any] | None = Path
    dvc_value: str | None = None  # what dvc.yaml passes, when not the default
    choices: tuple[str, ...] | None = None
    required: bool = False
    # A folder the stage accepts empty (a zone nothing has written to yet): made when missing
    # before the stage runs, since DVC refuses a dependency that does not exist.
    made: bool = False

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def in_cmd(self) -> bool:
        return self.role != "option" or self.dvc_value is not None

    @property
    def value(self) -> str:
        return self.dvc_value if self.dvc_value is not None else str(self.default)


@dataclass(frozen=True)
class Stage:
    name: str  # the CLI subcommand; the dvc stage is the same with underscores
    summary: str
    run: Callable[[argparse.Namespace, Params], object]
    args: tuple[Arg, ...] = ()
    code: tuple[str, ...] = ()  # modules whose import closure is the stage's code
    params: tuple[str, ...] = ()  # params.yaml keys it reads
    inputs: tuple[str, ...] = ()  # files it reads that are not arguments (gx/, sources/)
    feast_sources: bool = False  # reads the feature views' source tables through Feast
    dvc: bool = True  # a stage of dvc.yaml (else a command only)
    writes: bool = True  # takes the workspace lock
    positional: tuple[Arg, ...] = field(default=())

    @property
    def dvc_name(self) -> str:
        return self.name.replace("-", "_")


# --- What each stage runs: parse nothing, call one function of the package ----------------


def _simulate(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.data import simulate

    return simulate.run(params.simulate, args.out, args.truth)


def _land(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.data import land

    # The feedback zone is validate's dependency beside the landing zone: it must exist, even
    # empty. Land only makes it; what served sessions logged there is never touched.
    args.feedback.mkdir(parents=True, exist_ok=True)
    return land.run(params.source, params.simulate, args.out, args.truth)


def _ingest(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.data import ingest

    return ingest.run(args.file, args.format, args.out)


def _validate(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.validation import gate

    report = gate.run(
        params.validate_,
        args.landing,
        args.out,
        args.quarantine,
        args.project,
        ledger=args.ledger,
        feedback=args.feedback,
    )
    return report.summary()


def _featurize(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.features import featurize

    return featurize.run(params.features, args.validated, args.out, args.cache)


def _feast_apply(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.features import store

    return store.apply(args.repo, args.out)


def _feast_plan(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.features import store

    return store.plan(args.repo)


def _materialize(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.features import store

    end = args.end or datetime.now(UTC)
    return store.materialize(args.repo, end=end, start=args.start, summary_file=args.out)


def _index(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.serving import retrieval

    return retrieval.build(
        params.features,
        params.serve,
        args.repo,
        args.validated,
        args.out,
        args.truth,
        args.metrics,
        args.cache,
    )


def _build_dataset(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.features import dataset

    return dataset.run(params.dataset, params.features, args.validated, args.repo, args.out)


def _train(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.features.dataset import trainable
    from mtlrec.training import distributed, train

    if args.baselines is not None:
        return _train_with_baselines(args, params)
    nproc = args.nproc or distributed.auto_processes(args.data / "train.parquet")
    if nproc > 1 and not distributed.is_worker():  # re-run this command under torchrun
        argv = ["--params", str(args.params), "train", "--data", str(args.data)]
        argv += ["--out", str(args.out), "--cache", str(args.cache)]
        argv += ["--checkpoints", str(args.checkpoints), "--timings", str(args.timings)]
        status = distributed.launch(nproc, argv)
        if status:
            raise SystemExit(status)
        return None  # rank 0 printed the result
    model, narrowed = trainable(params.model, args.data)
    if narrowed:
        print(narrowed)
    result = train.run(
        model,
        params.train,
        args.data,
        args.out,
        args.cache,
        checkpoints=args.checkpoints,
        timings=args.timings,
    )
    return result if distributed.rank() == 0 else None


def _train_with_baselines(args: argparse.Namespace, params: Params) -> object:
    """The challenger and the single-task baselines, one process each (`training/jobs.py`)."""
    from mtlrec.features.dataset import labelled, trainable
    from mtlrec.training import distributed, jobs

    model, narrowed = trainable(params.model, args.data)
    if narrowed:
        print(narrowed)
    tasks = labelled(params.baselines.tasks, args.data)
    work = [jobs.Job(model, args.out, args.checkpoints, timings=args.timings)]
    work += jobs.baseline_jobs(
        tasks,
        params.model,
        args.baselines,
        args.baseline_checkpoints,
        params.baselines.train(params.train),
    )
    workers = args.nproc or distributed.auto_processes(args.data / "train.parquet")
    jobs.train_all(work, params.train, args.data, args.cache, workers)
    return None  # each job printed its result


def _evaluate(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.evaluation import evaluate
    from mtlrec.evaluation.metrics import metrics_table

    report = evaluate.run(
        params.evaluate, args.model, args.data, args.truth, args.cache, args.out, args.plots
    )
    return metrics_table(report)


def _baselines(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.evaluation import baselines

    paths = baselines.BaselinePaths(
        data=args.data,
        truth=args.truth,
        cache=args.cache,
        models=args.models,
        challenger_metrics=args.metrics,
        out=args.out,
        comparison=args.comparison,
    )
    return baselines.run(params.evaluate, params.baselines, paths)


def _online_test(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.online import experiment

    paths = experiment.OnlinePaths(
        challenger=args.model,
        registry=args.registry,
        repo=args.repo,
        index=args.index,
        cache=args.cache,
        truth=args.truth,
        out=args.out,
        plots=args.plots,
    )
    report = experiment.run(
        params.online_test, params.gate, params.serve, params.simulate, params.source, paths
    )
    return f"online test: {report['verdict']['reason']}"


def _promote(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.evaluation import promote

    paths = promote.PromotePaths(
        challenger=args.model,
        challenger_metrics=args.metrics,
        data=args.data,
        truth=args.truth,
        cache=args.cache,
        registry=args.registry,
        dvc_lock=args.lock,
        out=args.out,
        online=args.online,
        champion_metrics=args.champion_metrics,
    )
    return promote.run(params.gate, params.evaluate, paths)


def _report(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.evaluation import report

    paths = report.ReportPaths(args.comparison, args.gate, args.champion, args.out, args.plot)
    return report.run(paths)


def _serve(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.serving.service import ServePaths, serve

    paths = ServePaths(registry=args.registry, repo=args.repo, index=args.index, cache=args.cache)
    serve(params.serve, paths, args.host, args.port)
    return None


def _log_sessions(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.online import feedback

    paths = feedback.FeedbackPaths(
        registry=args.registry,
        repo=args.repo,
        index=args.index,
        cache=args.cache,
        truth=args.truth,
        landing=args.landing,
        out=args.out,
    )
    return feedback.log_sessions(
        params.online_test,
        params.serve,
        params.simulate,
        params.source,
        paths,
        args.days,
        args.sessions,
    )


def _rollback(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.registry import Registry

    version = Registry(args.registry).rollback(args.to)
    return f"production now points at {version}"


def _dvc_yaml(args: argparse.Namespace, params: Params) -> object:
    """dvc.yaml, and beside it the page its plots are drawn in (.dvc/plots/page.html)."""
    from mtlrec.static import plots_page

    root = Path(args.params).resolve().parent
    files = {Path(args.out): render_dvc_yaml(root), Layout(root).plots_page: plots_page()}
    if args.check:
        stale = [str(f) for f, text in files.items() if not f.is_file() or f.read_text() != text]
        if stale:
            from mtlrec.errors import UserError

            raise UserError(f"{', '.join(stale)}: not what src/mtlrec/stages.py declares: "
                            "rerun `mtlrec dvc-yaml`")  # fmt: skip
        return f"{args.out} and {Layout(root).plots_page} match the stage declarations"
    for file, text in files.items():
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    return f"wrote {args.out} from the stage declarations, and {Layout(root).plots_page}"


# --- The declarations ----------------------------------------------------------------------


def _a(flag: str, default: Any, role: Role, help: str, **extra: Any) -> Arg:
    return Arg(flag, help, default, role, **extra)


CACHE = _a("--cache", L.text_cache, "state", "text embedding cache (shared by the stages)")
REPO = _a("--repo", L.feature_repo, "dep", "the Feast feature repo")
TRUTH = _a("--truth", L.ground_truth, "dep", "the simulator's ground truth (oracle values)")
TRAINING = _a("--data", L.training, "dep", "the training set (train, valid, test splits)")
REGISTRY = _a("--registry", L.registry, "state", "model versions and the production alias")
INDEX = _a("--index", L.index, "dep", "the retrieval index (`mtlrec index`)")

STAGES: tuple[Stage, ...] = (
    Stage(
        "land",
        "Fill the landing zone from params' source: the simulator or an ingested file.",
        _land,
        (
            _a("--out", L.landing, "persist", "the landing zone"),
            _a("--truth", L.ground_truth, "persist", "ground truth (simulated sources only)"),
            _a("--feedback", L.feedback, "state", "the feedback zone (made if missing)"),
        ),
        code=("mtlrec.data.land", "mtlrec.data.simulate", "mtlrec.data.ingest"),
        params=("source", "simulate"),
        inputs=("sources",),
    ),
    Stage(
        "validate",
        "Validate landing and feedback batches with GX; quarantine failures.",
        _validate,
        (
            _a("--landing", L.landing, "dep", "the landing zone"),
            _a("--feedback", L.feedback, "dep", "impressions served sessions logged", made=True),
            _a("--out", L.validated, "out", "where passing batches go"),
            _a("--quarantine", L.quarantine, "state", "where failing batches are held"),
            _a("--project", Path("."), "option", "folder holding gx/"),
            _a("--ledger", None, "option", "ingest ledger (default: beside the quarantine)"),
        ),
        code=("mtlrec.validation.gate",),
        params=("validate",),
        inputs=("gx/expectations",),
    ),
    Stage(
        "featurize",
        "Compute the offline feature tables (the sources of the Feast views).",
        _featurize,
        (
            _a("--validated", L.validated, "dep", "validated batches"),
            _a("--out", L.features, "out", "the feature tables"),
            CACHE,
        ),
        code=("mtlrec.features.featurize",),
        params=("features.windows_days", "features.title_encoder"),
    ),
    Stage(
        "feast-apply",
        "Apply the Feast feature repo to the registry.",
        _feast_apply,
        (
            REPO,
            _a("--out", L.feast_apply_summary, "uncached", "what the registry now holds"),
        ),
        code=("mtlrec.features.store",),
        params=("features.windows_days",),  # the activity views' fields (feature_repo/params.py)
        inputs=("data/features",),
    ),
    Stage(
        "materialize",
        "Load the feature views into the online store (a full load in dvc.yaml).",
        _materialize,
        (
            REPO,
            _a(
                "--start",
                None,
                "option",
                "full load from START (default: incremental)",
                type=_timestamp,
                dvc_value=FULL_LOAD,
            ),  # fmt: skip
            _a("--end", None, "option", "load up to END (default: now)", type=_timestamp),
            _a("--out", L.materialize_summary, "uncached", "rows loaded per view"),
        ),
        code=("mtlrec.features.store",),
        inputs=("data/feast/apply.json", "data/features"),
        feast_sources=True,
    ),
    Stage(
        "index",
        "Build the retrieval index (title embeddings) and the feed candidates.",
        _index,
        (
            REPO,
            _a("--validated", L.validated, "dep", "validated batches (feed popularity)"),
            _a("--truth", L.ground_truth, "dep", "for recall@k"),
            CACHE,
            _a("--out", L.index, "out", "the index and feed tables"),
            _a("--metrics", L.retrieval_metrics, "metric", "recall@k"),
        ),
        code=("mtlrec.serving.retrieval",),
        params=("features.title_encoder", "serve.retrieve"),
        inputs=("data/features", "data/feast/apply.json"),
    ),
    Stage(
        "build-dataset",
        "Point-in-time training set from Feast, split.",
        _build_dataset,
        (
            _a("--validated", L.validated, "dep", "validated batches (the labels)"),
            REPO,
            _a("--out", L.training, "out", "train, valid, test splits and schema.json"),
        ),
        code=("mtlrec.features.dataset",),
        params=("dataset", "features.feature_service"),
        inputs=("data/features", "data/feast/apply.json"),
        feast_sources=True,
    ),
    Stage(
        "train",
        "Train the multi-task model (and, with --baselines, the single-task baselines).",
        _train,
        (
            TRAINING,
            _a("--out", L.challenger, "out", "the trained model"),
            CACHE,
            _a("--checkpoints", L.checkpoints / "train", "state", "resumable checkpoints"),
            _a("--timings", L.timings / "train.json", "state", "wall-clock timings"),
            _a(
                "--baselines",
                None,
                "out",
                "also train the single-task baselines (baselines.tasks) here, one model per "
                "task, each in a process of its own beside the challenger's",
                dvc_value=str(L.baseline_models),
            ),
            _a(
                "--baseline-checkpoints",
                None,
                "state",
                "the baselines' resumable checkpoints (default: beside --baselines)",
                dvc_value=str(L.checkpoints / "baselines"),
            ),
            _a(
                "--nproc",
                0,
                "option",
                "processes: with --baselines, models trained at once (one process each); "
                "without, data-parallel processes of the challenger (torchrun, gloo on CPU); "
                "0: one per `train.thread_count()` cores for a training split of 200,000 rows "
                "or more",
                type=int,
            ),  # fmt: skip
        ),
        code=(
            "mtlrec.training.train",
            "mtlrec.training.jobs",
            "mtlrec.training.distributed",
            "mtlrec.features.dataset",
        ),
        params=("model", "train", "baselines.tasks", "baselines.batch_size", "baselines.lr"),
    ),
    Stage(
        "evaluate",
        "Metrics per task beside their oracle values; curves for dvc plots.",
        _evaluate,
        (
            _a("--model", L.challenger, "dep", "the model to evaluate"),
            TRAINING,
            TRUTH,
            CACHE,
            _a("--out", L.challenger_metrics, "metric", "the metrics"),
            _a("--plots", L.plots, "plot", "ROC, precision-recall, calibration, training curve"),
        ),
        code=("mtlrec.evaluation.evaluate", "mtlrec.evaluation.metrics"),
        params=("evaluate",),
    ),
    Stage(
        "baselines",
        "Score the single-task baselines (the train stage trains them); multi vs single vs oracle.",
        _baselines,
        (
            TRAINING,
            TRUTH,
            CACHE,
            _a("--models", L.baseline_models, "dep", "one model per task (mtlrec train)"),
            _a("--metrics", L.challenger_metrics, "dep", "the multi-task model's metrics"),
            _a("--out", L.baselines_metrics, "metric", "the baselines' metrics"),
            _a("--comparison", L.comparison_metrics, "metric", "multi vs single vs oracle"),
        ),
        code=("mtlrec.evaluation.baselines",),
        params=("evaluate", "baselines"),
    ),
    Stage(
        "online-test",
        "The challenger against the champion on simulated shoppers: A/B and interleaving.",
        _online_test,
        (
            _a("--model", L.challenger, "dep", "the challenger"),
            REGISTRY,
            _a("--repo", L.feature_repo, "state", "the Feast feature repo (the online store)"),
            INDEX,
            CACHE,
            _a("--truth", L.ground_truth, "dep", "the shop's fitted behaviour"),
            _a("--out", L.online_metrics, "metric", "the report"),
            _a("--plots", L.online_metrics.with_suffix(".csv"), "uncached", "the plot's table"),
        ),
        code=("mtlrec.online.experiment",),
        params=(
            "online_test",
            "serve",
            "simulate",
            "source.kind",
            "gate.online_test",
            "gate.online_metric",
        ),  # fmt: skip
        inputs=("data/feast/materialize.json",),
    ),
    Stage(
        "promote",
        "Gate the challenger against the champion (offline and online); register it.",
        _promote,
        (
            _a("--model", L.challenger, "dep", "the challenger"),
            _a("--metrics", L.challenger_metrics, "dep", "its metrics"),
            TRAINING,
            TRUTH,
            CACHE,
            REGISTRY,
            _a("--lock", L.dvc_lock, "state", "dvc.lock (data hashes for the model card)"),
            _a("--out", L.gate_report, "metric", "the decision and its reasons"),
            _a("--online", L.online_metrics, "dep", "the online test's report"),
            _a(
                "--champion-metrics",
                L.champion_metrics,
                "out",
                "the champion's metrics on the same test rows",
            ),
        ),
        code=("mtlrec.evaluation.promote",),
        params=("gate", "evaluate"),
    ),
    Stage(
        "report",
        "The run's metrics a person reads: one row per task, multi vs single vs oracle vs "
        "champion, and the gate's verdict (reports/metrics.md).",
        _report,
        (
            _a("--comparison", L.comparison_metrics, "dep", "multi vs single vs oracle"),
            _a("--gate", L.gate_report, "dep", "the gate's decision"),
            _a("--champion", L.champion_metrics, "dep", "the champion's metrics"),
            _a("--out", L.metrics_report, "uncached", "the Markdown report"),
            _a("--plot", L.comparison_plot, "plot", "the per-task comparison's plot table"),
        ),
        code=("mtlrec.evaluation.report",),
    ),
    # Commands that are no stage of dvc.yaml.
    Stage(
        "simulate",
        "Write the synthetic shop's daily batches and ground truth (what land runs).",
        _simulate,
        (
            _a("--out", L.landing, "out", "the landing zone"),
            _a("--truth", L.ground_truth, "out", "the ground truth"),
        ),
        dvc=False,
    ),
    Stage(
        "ingest",
        "Map a public dataset file into the raw contract (landing batches).",
        _ingest,
        (
            _a(
                "--format",
                None,
                "option",
                "the file's format",
                type=None,
                choices=("homedepot",),
                required=True,
            ),  # fmt: skip
            _a("--out", L.landing, "out", "the landing zone"),
        ),
        positional=(_a("file", None, "dep", "the source file"),),
        dvc=False,
    ),
    Stage(
        "feast-plan",
        "Show what `feast apply` would change.",
        _feast_plan,
        (REPO,),
        dvc=False,
        writes=False,
    ),
    Stage(
        "serve",
        "Serve the production model: POST /rank, GET /readyz, /metrics (until Ctrl-C).",
        _serve,
        (
            _a("--host", "127.0.0.1", "option", "address to listen on", type=None),
            _a("--port", 8000, "option", "port to listen on", type=int),
            REGISTRY,
            REPO,
            INDEX,
            CACHE,
        ),
        dvc=False,
        writes=False,
    ),
    Stage(
        "log-sessions",
        "The production model serves simulated shoppers; their impressions land as feedback.",
        _log_sessions,
        (
            _a("--days", 1, "option", "days after the data on file", type=int),
            _a("--sessions", 2000, "option", "sessions a day", type=int),
            REGISTRY,
            REPO,
            INDEX,
            CACHE,
            TRUTH,
            _a("--landing", L.landing, "dep", "to find the last day on file"),
            _a("--out", L.feedback, "out", "the feedback zone"),
        ),
        dvc=False,
    ),
    Stage(
        "rollback",
        "Point production back at the previous (or a given) version.",
        _rollback,
        (
            REGISTRY,
            _a("--to", None, "option", "version to restore, e.g. v2", type=None),
        ),
        dvc=False,
    ),
    Stage(
        "dvc-yaml",
        "Write dvc.yaml from the stage declarations (src/mtlrec/stages.py), and the page "
        "`dvc plots show` fills (.dvc/plots/page.html).",
        _dvc_yaml,
        (
            _a("--out", L.dvc_yaml, "out", "the file to write"),
            _a("--check", False, "option", "only check that it is up to date", type=None),
        ),
        dvc=False,
    ),
)
DVC_STAGES = tuple(stage for stage in STAGES if stage.dvc)


def make_empty_inputs(stage: Stage, root: Path) -> None:
    """Make the folders the stage accepts empty (`Arg.made`) that do not exist yet."""
    for arg in stage.args:
        if arg.made:
            (root / arg.value).mkdir(parents=True, exist_ok=True)


# --- The CLI -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, stage: Stage) -> None:
    for arg in stage.positional:
        parser.add_argument(arg.dest, type=arg.type, help=arg.help)
    for arg in stage.args:
        if arg.flag == "--check":
            parser.add_argument(arg.flag, action="store_true", help=arg.help)
            continue
        shown = f" (default: {arg.default})" if arg.default is not None else ""
        settings: dict[str, Any] = {"default": arg.default, "help": arg.help + shown}
        if arg.type is not None:
            settings["type"] = arg.type
        if arg.choices:
            settings["choices"] = arg.choices
        if arg.required:
            settings["required"] = True
        parser.add_argument(arg.flag, **settings)


# --- dvc.yaml ------------------------------------------------------------------------------


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != "mtlrec":
        return None
    base = SOURCE_ROOT.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports(file: Path) -> set[str]:
    """The package modules `file` imports, at any depth of the file (lazy imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("mtlrec") and _module_file(name)}


def import_closure(modules: tuple[str, ...]) -> set[Path]:
    """Every package file the modules import, directly or not, themselves included; a
    module's parent packages too (importing mtlrec.model.text runs mtlrec/model/__init__)."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parents = [".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")))]
        todo += [p for p in parents if _module_file(p)]
        todo += sorted(_imports(_module_file(name)))
    return {_module_file(name) for name in seen - set(CLI_MODULES)}


def reads_feature_repo(stage: Stage) -> bool:
    return any(arg.default == L.feature_repo for arg in stage.args)


def feature_repo_code(root: Path) -> tuple[str, ...]:
    """The package modules the feature repo's files import: an on-demand view's function
    (`feature_repo/features/query.py`) runs in the process of every stage that reads the
    views, with what it imports."""
    files = sorted((root / "feature_repo").rglob("*.py"))
    return tuple(sorted(set().union(*(_imports(file) for file in files))))


def code_deps(stage: Stage, extra: tuple[str, ...] = ()) -> list[str]:
    """The stage's code (and the `extra` modules it runs) as dvc.yaml lists it: whole package
    folders when every module of one is imported, single files otherwise (paths relative to
    the workspace)."""
    files = import_closure((*stage.code, *extra))
    listed: list[str] = []
    for package in sorted({f.parent for f in files}, key=lambda p: len(p.parts)):
        if package == PACKAGE_ROOT or any(package.is_relative_to(SOURCE_ROOT / d) for d in listed):
            continue
        members = set(package.rglob("*.py"))
        if members and members <= files:
            listed.append(str(package.relative_to(SOURCE_ROOT)))
    covered = [SOURCE_ROOT / d for d in listed]
    singles = [f for f in files if not any(f.is_relative_to(d) for d in covered)]
    paths = [f"src/{d}" for d in listed] + [f"src/{f.relative_to(SOURCE_ROOT)}" for f in singles]
    return sorted(paths)


# Run in a child process: the feature repo's modules (`features`, `data_sources`, ...) are
# top-level names that must not linger in the caller's imports.
_LIST_SOURCES = """
import importlib, json, sys
from pathlib import Path
from feast import FeatureView
repo = Path(sys.argv[1])
sys.path.insert(0, str(repo))
paths = set()
for file in sorted((repo / "features").glob("*.py")):
    for value in vars(importlib.import_module(f"features.{file.stem}")).values():
        if isinstance(value, FeatureView) and getattr(value.batch_source, "path", None):
            paths.add(value.batch_source.path)
print(json.dumps(sorted(paths)))
"""


def feast_source_files(root: Path) -> list[str]:
    """The files behind the feature views' sources that featurize does not write (a table
    another team publishes): the stages reading the views depend on them, read from the Feast
    definitions, not listed by hand."""
    import json
    import subprocess
    import sys

    repo = (root / "feature_repo").resolve()
    done = subprocess.run(
        [sys.executable, "-c", _LIST_SOURCES, str(repo)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"cannot read the feature views of {repo}:\n{done.stderr[-2000:]}")
    files = [Path(path) for path in json.loads(done.stdout.strip().splitlines()[-1])]
    features = (root / "data" / "features").resolve()
    outside = [f for f in files if not f.resolve().is_relative_to(features)]
    return sorted(str(_relative(f, root)) for f in outside)


def _relative(path: Path, root: Path) -> Path:
    path = path.resolve()
    return path.relative_to(root.resolve()) if path.is_relative_to(root.resolve()) else path


def stage_entry(stage: Stage, root: Path) -> dict[str, Any]:
    """The stage's dvc.yaml entry."""
    cmd = " ".join(["mtlrec", stage.name, *(f"{a.flag} {a.value}" for a in stage.args if a.in_cmd)])
    deps = [a.value for a in stage.args if a.role == "dep"] + list(stage.inputs)
    if stage.feast_sources:
        deps += feast_source_files(root)
    extra = feature_repo_code(root) if reads_feature_repo(stage) else ()
    code = code_deps(stage, extra)
    entry: dict[str, Any] = {"cmd": cmd, "deps": [*dict.fromkeys(deps), *code]}
    if stage.params:
        entry["params"] = list(stage.params)
    outs: list[Any] = []
    metrics: list[Any] = []
    for arg in stage.args:
        if arg.role == "out":
            outs.append(arg.value)
        elif arg.role == "persist":
            outs.append({arg.value: {"persist": True}})
        elif arg.role in ("uncached", "plot"):
            outs.append({arg.value: {"cache": False}})
        elif arg.role == "metric":
            metrics.append({arg.value: {"cache": False}})
    if outs:
        entry["outs"] = outs
    if metrics:
        entry["metrics"] = metrics
    return entry


# The templates named here (other than DVC's own `bar_horizontal`) are Vega-Lite specs in
# .dvc/plots/: one colour per task (the curve file's name) and one dash per revision, where
# DVC's own give one colour per revision and tell files apart by dashes only.
TASKS = ("ctr", "cvr", "ctcvr")
PLOTS: list[dict[str, Any]] = [
    {"Comparison": {
        "title": "Per task: multi-task vs single-task vs champion vs oracle (test split)",
        "template": "comparison", "x": "value", "y": {"reports/comparison.csv": "model"},
        "x_label": "headline metric (each task on its own scale)", "y_label": "model"}},
    {"ROC": {
        "title": "ROC on the test split (ctr on impressions, cvr on clicks, ctcvr on impressions)",
        "template": "roc", "x": "fpr",
        "y": {f"plots/roc/{t}.csv": "tpr" for t in TASKS},
        "x_label": "false positive rate", "y_label": "true positive rate"}},
    {"Precision-recall": {
        "title": "Precision-recall on the test split", "template": "task_curves", "x": "recall",
        "y": {f"plots/precision_recall/{t}.csv": "precision" for t in TASKS},
        "x_label": "recall", "y_label": "precision"}},
    {"Calibration": {
        "title": "Calibration (equal-mass bins; on the diagonal is calibrated)",
        "template": "calibration", "x": "predicted",
        "y": {f"plots/calibration/{t}.csv": "observed" for t in TASKS},
        "x_label": "mean predicted probability", "y_label": "observed rate"}},
    {"Online test": {
        "title": "Online test, per arm (A/B means; interleaving: share preferring the challenger)",
        "template": "bar_horizontal", "x": "value", "y": {"metrics/online_test.csv": "metric"},
        "x_label": "value", "y_label": "metric"}},
    {"Training curve": {
        "title": "Losses per epoch; below, the selection score (valid_score, normalized)",
        "template": "training_curve", "x": "epoch",
        "y": {"plots/training_curve.csv": ["train_loss", "valid_loss", "valid_score"]},
        "x_label": "epoch", "y_label": "loss"}},
]  # fmt: skip

HEADER = """\
# Generated from src/mtlrec/stages.py by `mtlrec dvc-yaml`: edit the declarations there, then
# rerun it (tests/test_stages.py fails while this file and the declarations disagree).
# Each stage is `mtlrec <stage>`; deps list its inputs and every package module its code
# imports, params the keys it reads, so a change reruns exactly the stages after it.
"""


def render_dvc_yaml(root: Path) -> str:
    import yaml

    document = {"stages": {s.dvc_name: stage_entry(s, root) for s in DVC_STAGES}, "plots": PLOTS}
    body = yaml.safe_dump(document, sort_keys=False, width=100, default_flow_style=False)
    # A blank line before each stage and each plot: a file a person reads.
    lines = [
        f"\n{line}" if line.startswith(("  ", "- ")) and not line.startswith("   ")
        and line.rstrip().endswith(":") and index > 1 else line
        for index, line in enumerate(body.splitlines())
    ]  # fmt: skip
    return HEADER + "\n".join(lines) + "\n"
