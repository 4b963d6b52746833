"""One declaration per stage: dvc.yaml, the CLI and the DAG follow from `mtlrec.stages`."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

from mtlrec import stages
from mtlrec.cli import build_parser
from tests.conftest import REPO


def test_dvc_yaml_is_what_the_declarations_render() -> None:
    assert (REPO / "dvc.yaml").read_text() == stages.render_dvc_yaml(REPO), (
        "dvc.yaml and src/mtlrec/stages.py disagree: run `mtlrec dvc-yaml`"
    )


def test_plots_page_is_what_the_vendored_bundles_render() -> None:
    from mtlrec.static import plots_page

    page = REPO / ".dvc" / "plots" / "page.html"
    assert page.read_text() == plots_page(), f"{page} is stale: run `mtlrec dvc-yaml`"
    assert "html_template = plots/page.html" in (REPO / ".dvc" / "config").read_text()


def _imported(file: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mtlrec"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mtlrec")}
    return found


@pytest.mark.parametrize("stage", stages.DVC_STAGES, ids=lambda s: s.dvc_name)
def test_every_module_a_stage_imports_is_one_of_its_deps(stage: stages.Stage) -> None:
    """Read apart from the closure the declarations compute: the modules the stage's own
    function and code import, followed to the end, must each sit under a listed dep."""
    deps = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage.dvc_name]["deps"]
    todo = [*stage.code, *_imported_by_runner(stage)]
    if "feature_repo" in deps:  # its on-demand views run in the stage with what they import
        todo += sorted(set().union(*map(_imported, (REPO / "feature_repo").rglob("*.py"))))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name in stages.CLI_MODULES:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        file = Path(spec.origin).resolve().relative_to(REPO)
        assert any(str(file) == d or str(file).startswith(d.rstrip("/") + "/") for d in deps), (
            f"{stage.dvc_name} imports {name} ({file}) but its deps do not cover it"
        )
        todo += sorted(_imported(REPO / file))


def _imported_by_runner(stage: stages.Stage) -> set[str]:
    """The modules the stage's function in stages.py imports."""
    tree = ast.parse((REPO / "src" / "mtlrec" / "stages.py").read_text())
    runner = next(n for n in tree.body if isinstance(n, ast.FunctionDef)
                  and n.name == stage.run.__name__)  # fmt: skip
    found = set()
    for node in ast.walk(runner):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mtlrec"):
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return {name for name in found if _is_module(name)}


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # `from mtlrec.x import f`: f is no module
        return False


def test_the_cli_has_one_subcommand_per_declaration() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "stage").choices
    assert list(commands) == [stage.name for stage in stages.STAGES]
    for stage in stages.STAGES:
        help_text = commands[stage.name].format_help()
        for arg in stage.args:
            assert arg.flag in help_text and arg.help.split(" (")[0] in help_text, arg.flag


def test_every_path_option_is_a_layout_default() -> None:
    for stage in stages.STAGES:
        for arg in stage.args:
            if arg.role in ("dep", "out", "persist", "uncached", "metric", "plot"):
                # An opt-in output (`train --baselines`): off on the command line, on in dvc.yaml.
                opt_in = arg.default is None and arg.dvc_value is not None
                assert isinstance(arg.default, Path) or opt_in, (stage.name, arg.flag)
