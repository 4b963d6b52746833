"""Per-epoch checkpoints: resume after a crash to exactly the result of an uninterrupted run.

A checkpoint is a directory `epoch_NNN/` with `weights.safetensors` (model + learned loss
weights), `best.safetensors` (the best epoch so far), `optimizer.pt` (tensors only, loaded with
`weights_only=True`) and `state.json` (history, early-stopping state, the run's fingerprint). It is
written under a temporary name and renamed, so a crash mid-write leaves the previous one intact.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

STATE_FILE = "state.json"


@dataclass
class TrainState:
    """Everything besides tensors that the loop needs to continue."""

    fingerprint: str
    epoch: int = 0  # epochs completed
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_valid_loss: float = float("inf")
    bad_epochs: int = 0
    stopped_early: bool = False


def fingerprint(*parts: object, files: list[Path]) -> str:
    """Hash of the run's configuration and input bytes: a checkpoint only resumes its own run."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().contiguous() for name, value in module.state_dict().items()}


def save_checkpoint(
    root: Path,
    state: TrainState,
    trainable: nn.Module,
    best: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
) -> Path:
    """Write epoch `state.epoch` atomically and drop older checkpoints."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch_{state.epoch:03d}"
    tmp = root / f".tmp_epoch_{state.epoch:03d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(_tensors(trainable), tmp / "weights.safetensors")
    save_file({k: v.contiguous() for k, v in best.items()}, tmp / "best.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in root.glob("epoch_*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: Path, expected_fingerprint: str) -> Path | None:
    """The newest complete checkpoint of this very run, if any."""
    for path in sorted(root.glob("epoch_*"), reverse=True):
        state_file = path / STATE_FILE
        if state_file.is_file():
            state = json.loads(state_file.read_text())
            if state.get("fingerprint") == expected_fingerprint:
                return path
    return None


def load_checkpoint(
    path: Path, trainable: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[TrainState, dict[str, torch.Tensor]]:
    """Restore weights and optimizer in place; return the loop state and the best weights."""
    trainable.load_state_dict(load_file(path / "weights.safetensors"), strict=True)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    state = TrainState(**json.loads((path / STATE_FILE).read_text()))
    return state, load_file(path / "best.safetensors")
