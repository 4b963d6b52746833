"""`mtlrec <stage>`: the entry points that dvc.yaml and the Airflow DAG call.

Each subcommand only parses its arguments, loads its own section of params.yaml and calls the
stage's `run`. Expected failures (bad params, a rejected batch) print a message and exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mtlrec.config import Params, load_params
from mtlrec.errors import UserError
from mtlrec.layout import DEFAULT as L

Handler = Callable[[argparse.Namespace, Params], object]


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


def _build_dataset(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.features import dataset

    return dataset.run(params.dataset, params.features, args.validated, args.repo, args.out)


def _train(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.features.dataset import trainable
    from mtlrec.training import distributed, train

    if args.nproc > 1 and not distributed.is_worker():  # re-run this command under torchrun
        argv = ["--params", str(args.params), "train", "--data", str(args.data)]
        argv += ["--out", str(args.out), "--cache", str(args.cache)]
        argv += ["--checkpoints", str(args.checkpoints), "--timings", str(args.timings)]
        status = distributed.launch(args.nproc, argv)
        if status:
            raise SystemExit(status)
        return None  # rank 0 printed the result
    model = trainable(params.model, args.data)
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


def _evaluate(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.evaluation import evaluate

    report = evaluate.run(
        params.evaluate, args.model, args.data, args.truth, args.cache, args.out, args.plots
    )
    return _metrics_table(report)


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
        checkpoints=args.checkpoints,
    )
    return baselines.run(params.model, params.train, params.evaluate, params.baselines, paths)


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
    )
    return promote.run(params.gate, params.evaluate, paths)


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


def _serve(args: argparse.Namespace, params: Params) -> object:
    from mtlrec.serving.service import ServePaths, serve

    paths = ServePaths(registry=args.registry, repo=args.repo, index=args.index, cache=args.cache)
    serve(params.serve, paths, args.host, args.port)
    return None


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


def _metrics_table(report: dict[str, dict[str, float | None]]) -> str:
    lines = [f"{'task':<10} {'metric':<14} {'model':>8} {'oracle':>8}"]
    for task, values in report.items():
        for name, value in values.items():
            if name.startswith("oracle_") or name in ("rows", "positives"):
                continue
            oracle = values.get(f"oracle_{name}")
            lines.append(f"{task:<10} {name:<14} {_fmt(value):>8} {_fmt(oracle):>8}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _stages() -> dict[str, tuple[str, Handler, list[tuple[str, dict]]]]:
    path = {"type": Path}
    return {
        "simulate": (
            "Write the synthetic shop's daily batches and ground truth.",
            _simulate,
            [
                ("--out", {**path, "default": L.landing}),
                ("--truth", {**path, "default": L.ground_truth}),
            ],
        ),
        "land": (
            "Fill the landing zone from params' source: the simulator or an ingested file.",
            _land,
            [
                ("--out", {**path, "default": L.landing}),
                ("--truth", {**path, "default": L.ground_truth}),
                ("--feedback", {**path, "default": L.feedback, "help": "made if missing"}),
            ],
        ),
        "ingest": (
            "Map a public dataset file into the raw contract (landing batches).",
            _ingest,
            [
                ("file", {**path, "help": "the source file"}),
                ("--format", {"choices": ["homedepot"], "required": True}),
                ("--out", {**path, "default": L.landing}),
            ],
        ),
        "validate": (
            "Validate landing batches with GX; quarantine failures.",
            _validate,
            [
                ("--landing", {**path, "default": L.landing}),
                ("--feedback", {**path, "default": L.feedback, "help": "logged sessions"}),
                ("--out", {**path, "default": L.validated}),
                ("--quarantine", {**path, "default": L.quarantine}),
                ("--project", {**path, "default": Path("."), "help": "folder holding gx/"}),
                (
                    "--ledger",
                    {**path, "default": None, "help": "ingest ledger (default: beside quarantine)"},
                ),
            ],
        ),
        "featurize": (
            "Compute the offline feature tables.",
            _featurize,
            [
                ("--validated", {**path, "default": L.validated}),
                ("--out", {**path, "default": L.features}),
                ("--cache", {**path, "default": L.text_cache, "help": "text embedding cache"}),
            ],
        ),
        "feast-apply": (
            "Apply the Feast feature repo to the registry.",
            _feast_apply,
            [
                ("--repo", {**path, "default": L.feature_repo}),
                ("--out", {**path, "default": None, "help": "write a registry summary here"}),
            ],
        ),
        "feast-plan": (
            "Show what `feast apply` would change.",
            _feast_plan,
            [
                ("--repo", {**path, "default": L.feature_repo}),
            ],
        ),
        "materialize": (
            "Load features into the online store.",
            _materialize,
            [
                ("--repo", {**path, "default": L.feature_repo}),
                (
                    "--start",
                    {
                        "type": _timestamp,
                        "default": None,
                        "help": "full load from START (default: incremental)",
                    },
                ),
                ("--end", {"type": _timestamp, "default": None, "help": "default: now"}),
                ("--out", {**path, "default": None, "help": "write a summary here"}),
            ],
        ),
        "build-dataset": (
            "Point-in-time training set from Feast, split.",
            _build_dataset,
            [
                ("--validated", {**path, "default": L.validated}),
                ("--repo", {**path, "default": L.feature_repo}),
                ("--out", {**path, "default": L.training}),
            ],
        ),
        "train": (
            "Train the multi-task model.",
            _train,
            [
                ("--data", {**path, "default": L.training}),
                ("--out", {**path, "default": L.challenger}),
                ("--cache", {**path, "default": L.text_cache}),
                (
                    "--checkpoints",
                    {**path, "default": L.checkpoints / "train", "help": "resumable checkpoints"},
                ),
                (
                    "--timings",
                    {**path, "default": L.timings / "train.json", "help": "wall-clock timings"},
                ),
                (
                    "--nproc",
                    {
                        "type": int,
                        "default": 1,
                        "help": "data-parallel processes (torchrun, gloo on CPU)",
                    },
                ),
            ],
        ),
        "evaluate": (
            "Metrics per task beside their oracle values; curves for dvc plots.",
            _evaluate,
            [
                ("--model", {**path, "default": L.challenger}),
                ("--data", {**path, "default": L.training}),
                ("--truth", {**path, "default": L.ground_truth}),
                ("--cache", {**path, "default": L.text_cache}),
                ("--out", {**path, "default": L.challenger_metrics}),
                ("--plots", {**path, "default": None, "help": "write plot data here"}),
            ],
        ),
        "baselines": (
            "Single-task baselines on the same data; multi vs single vs oracle.",
            _baselines,
            [
                ("--data", {**path, "default": L.training}),
                ("--truth", {**path, "default": L.ground_truth}),
                ("--cache", {**path, "default": L.text_cache}),
                ("--models", {**path, "default": L.baseline_models}),
                ("--metrics", {**path, "default": L.challenger_metrics, "help": "multi-task"}),
                ("--out", {**path, "default": L.baselines_metrics}),
                ("--comparison", {**path, "default": L.comparison_metrics}),
                (
                    "--checkpoints",
                    {**path, "default": L.checkpoints / "baselines", "help": "resumable"},
                ),
            ],
        ),
        "promote": (
            "Gate the challenger against the champion; register it.",
            _promote,
            [
                ("--model", {**path, "default": L.challenger}),
                ("--metrics", {**path, "default": L.challenger_metrics}),
                ("--data", {**path, "default": L.training}),
                ("--truth", {**path, "default": L.ground_truth}),
                ("--cache", {**path, "default": L.text_cache}),
                ("--registry", {**path, "default": L.registry}),
                ("--lock", {**path, "default": L.dvc_lock}),
                ("--out", {**path, "default": L.gate_report}),
                ("--online", {**path, "default": L.online_metrics, "help": "online test"}),
            ],
        ),
        "index": (
            "Build the retrieval index (title embeddings) and the feed candidates.",
            _index,
            [
                ("--repo", {**path, "default": L.feature_repo}),
                ("--validated", {**path, "default": L.validated}),
                ("--truth", {**path, "default": L.ground_truth, "help": "for recall@k"}),
                ("--cache", {**path, "default": L.text_cache}),
                ("--out", {**path, "default": L.index}),
                ("--metrics", {**path, "default": L.retrieval_metrics}),
            ],
        ),
        "serve": (
            "Serve the production model: POST /rank, GET /readyz, /metrics (until Ctrl-C).",
            _serve,
            [
                ("--host", {"default": "127.0.0.1", "help": "address to listen on"}),
                ("--port", {"type": int, "default": 8000, "help": "port to listen on"}),
                ("--registry", {**path, "default": L.registry}),
                ("--repo", {**path, "default": L.feature_repo}),
                ("--index", {**path, "default": L.index}),
                ("--cache", {**path, "default": L.text_cache}),
            ],
        ),
        "online-test": (
            "The challenger against the champion on simulated shoppers: A/B and interleaving.",
            _online_test,
            [
                ("--model", {**path, "default": L.challenger, "help": "the challenger"}),
                ("--registry", {**path, "default": L.registry, "help": "its champion"}),
                ("--repo", {**path, "default": L.feature_repo}),
                ("--index", {**path, "default": L.index}),
                ("--cache", {**path, "default": L.text_cache}),
                ("--truth", {**path, "default": L.ground_truth, "help": "the shop's behaviour"}),
                ("--out", {**path, "default": L.online_metrics}),
                ("--plots", {**path, "default": None, "help": "write the plot's table here"}),
            ],
        ),
        "log-sessions": (
            "The production model serves simulated shoppers; their impressions land as feedback.",
            _log_sessions,
            [
                ("--days", {"type": int, "default": 1, "help": "days after the data on file"}),
                ("--sessions", {"type": int, "default": 2000, "help": "sessions a day"}),
                ("--registry", {**path, "default": L.registry}),
                ("--repo", {**path, "default": L.feature_repo}),
                ("--index", {**path, "default": L.index}),
                ("--cache", {**path, "default": L.text_cache}),
                ("--truth", {**path, "default": L.ground_truth}),
                ("--landing", {**path, "default": L.landing, "help": "to find the last day"}),
                ("--out", {**path, "default": L.feedback}),
            ],
        ),
        "rollback": (
            "Point production back at the previous (or a given) version.",
            _rollback,
            [
                ("--registry", {**path, "default": L.registry}),
                ("--to", {"default": None, "help": "version to restore, e.g. v2"}),
            ],
        ),
    }


# Stages that only read: they do not take the workspace lock.
READ_ONLY = frozenset({"feast-plan", "serve"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtlrec", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params", type=Path, default=L.params, help="the params file (default: %(default)s)"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error, not one line"
    )
    commands = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")
    for name, (summary, handler, options) in _stages().items():
        command = commands.add_parser(name, help=summary, description=summary)
        for flag, settings in options:
            command.add_argument(flag, **settings)
        command.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mtlrec.workspace import locked

    try:
        params = load_params(args.params)
        if args.stage in READ_ONLY:
            result = args.handler(args, params)
        else:
            with locked(Path(args.params).resolve().parent, f"mtlrec {args.stage}"):
                result = args.handler(args, params)
    except Exception as error:  # a user's mistake is one line; --debug shows the traceback
        if args.debug or os.environ.get(DEBUG_ENV):
            raise
        print(f"mtlrec {args.stage}: {describe(error)}", file=sys.stderr)
        return 1
    if result is not None:
        print(result)
    return 0


DEBUG_ENV = "MTLREC_DEBUG"


def describe(error: BaseException) -> str:
    """An error as the one line a person reads: the cause and the file it concerns."""
    from mtlrec.validation.gate import ValidationFailed

    if isinstance(error, ValidationFailed):
        return str(error)  # its report: one line per failed batch and cause
    if isinstance(error, UserError):
        return _one_line(str(error))
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.strerror or type(error).__name__}: {error.filename}"
    return (
        f"unexpected {type(error).__name__}: {_one_line(str(error))} "
        "(`mtlrec --debug ...` shows the traceback)"
    )


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


if __name__ == "__main__":
    sys.exit(main())
