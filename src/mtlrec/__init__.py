"""mtlrec: retraining platform for a multi-task search-and-recommendation model."""

from __future__ import annotations

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


_skip_feast_runtime_typechecks()
