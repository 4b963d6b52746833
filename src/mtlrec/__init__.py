"""mtlrec: retraining platform for a multi-task search-and-recommendation model."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import types
from typing import Any

__version__ = "0.1.0"


def _unchecked(target: Any = None, **_options: Any) -> Any:
    """typeguard's `typechecked` as it is under `python -O`: the target, unchanged."""
    return target if target is not None else _unchecked


def _skip_feast_runtime_typechecks() -> None:
    """Feast decorates ~240 of its functions and classes with typeguard's `@typechecked`, which
    re-reads and recompiles each one's source when feast is imported: 7 of the 11 s `import
    feast` took, paid by every process that uses Feast (five stages a run, the Feast child
    processes, each Airflow task). typeguard makes the decorator a no-op under `python -O` (its
    checks are a development aid); this does the same without -O's other effects (asserts).
    typeguard is installed for Feast alone: nothing else here requires it."""
    try:
        import typeguard
    except ImportError:  # pragma: no cover - feast (and so typeguard) is a dependency
        return
    typeguard.typechecked = _unchecked


class _DeferredFeastTorch(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Feast's `feast.torch_wrapper` imports torch when Feast is imported, for its `to_tensor`
    conversions alone (which nothing here calls): 2.0 of the 4.5 s `import feast` took on a
    2.0 GHz Zen 1, in processes that need no torch otherwise (`feast apply`'s two, materialize,
    build-dataset, index). This finds that module first and makes it with the one name Feast
    imports from it, `get_torch`, importing torch when first called."""

    NAME = "feast.torch_wrapper"

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        return importlib.util.spec_from_loader(name, self) if name == self.NAME else None

    def create_module(self, spec: Any) -> None:
        return None  # the default module

    def exec_module(self, module: types.ModuleType) -> None:
        module.get_torch = _torch  # type: ignore[attr-defined]


def _torch() -> types.ModuleType:
    import torch

    return torch


_skip_feast_runtime_typechecks()
sys.meta_path.insert(0, _DeferredFeastTorch())
