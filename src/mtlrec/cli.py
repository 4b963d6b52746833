"""`mtlrec <stage>`: the entry points that dvc.yaml and the Airflow DAG call.

The subcommands come from the stage declarations (`mtlrec.stages`): each parses its options,
loads params.yaml and calls the stage's one function. A user's mistake (a bad file, a bad param,
a damaged model) is one line naming the cause, exit 1; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mtlrec.config import load_params
from mtlrec.errors import UserError
from mtlrec.layout import DEFAULT as L
from mtlrec.stages import STAGES, add_arguments

DEBUG_ENV = "MTLREC_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtlrec", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params", type=Path, default=L.params, help="the params file (default: %(default)s)"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error, not one line"
    )
    commands = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")
    for stage in STAGES:
        command = commands.add_parser(stage.name, help=stage.summary, description=stage.summary)
        add_arguments(command, stage)
        command.set_defaults(declared=stage)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mtlrec.workspace import locked

    stage = args.declared
    try:
        params = load_params(args.params)
        if not stage.writes:
            result = stage.run(args, params)
        else:
            with locked(Path(args.params).resolve().parent, f"mtlrec {stage.name}"):
                result = stage.run(args, params)
    except Exception as error:  # a user's mistake is one line; --debug shows the traceback
        if args.debug or os.environ.get(DEBUG_ENV):
            raise
        print(f"mtlrec {stage.name}: {describe(error)}", file=sys.stderr)
        return 1
    if result is not None:
        print(result)
    return 0


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
