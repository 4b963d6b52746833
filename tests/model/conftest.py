"""Fixtures shared by the model's tests."""

import numpy as np
import pytest


@pytest.fixture
def numpy_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The shapes of the results of every `np.matmul` call while the test runs."""
    calls: list[tuple[int, ...]] = []
    matmul = np.matmul

    def spy(*args, **kwargs):
        out = matmul(*args, **kwargs)
        calls.append(out.shape)
        return out

    monkeypatch.setattr(np, "matmul", spy)
    return calls
