"""What importing `mtlrec` changes in how Feast imports (src/mtlrec/__init__.py)."""

import ast
import importlib.util
from pathlib import Path

import feast.torch_wrapper
import torch

from tests.conftest import fresh_python

FEAST = Path(importlib.util.find_spec("feast").origin).parent


def test_feast_imports_without_torch_or_typeguards_instrumentation() -> None:
    """In a fresh process: Feast's store and offline store import with torch left unimported,
    and its definition classes are the undecorated ones (typeguard's instrumentation imports
    its checks inside each method: 'typeguard' among the names the code refers to)."""
    code = (
        "import sys, mtlrec\n"
        "import feast, feast.infra.offline_stores.duckdb\n"
        "from feast import FeatureView\n"
        "checked = 'typeguard' in FeatureView.__init__.__code__.co_names\n"
        "print('torch' in sys.modules, checked)\n"
    )
    assert fresh_python(code) == ["False", "False"]


def test_feasts_torch_is_there_when_it_asks_for_it() -> None:
    assert feast.torch_wrapper.get_torch() is torch


def test_every_name_feast_imports_from_its_torch_wrapper_is_provided() -> None:
    """Read from Feast's own modules: a Feast release that imports another name from its
    wrapper would fail on import with ours."""
    wanted = {
        alias.name
        for file in FEAST.rglob("*.py")
        if "torch_wrapper" in (text := file.read_text(errors="replace"))
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.ImportFrom) and node.module == "feast.torch_wrapper"
        for alias in node.names
    }
    assert wanted == {"get_torch"}
    assert all(callable(getattr(feast.torch_wrapper, name)) for name in wanted)
