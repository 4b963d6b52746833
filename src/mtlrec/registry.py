"""Model versions and the production alias.

`models/registry/vN/` holds a promoted model (safetensors weights, JSON config and feature
spec), its metrics, the data hashes from `dvc.lock` and the run that made it. The production
alias is `production.json`, replaced with one atomic rename, so a reader sees either the old
or the new champion, never half of one. `history` keeps every alias move for rollback.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

MODEL_FILES = ("model.safetensors", "config.json", "feature_spec.json", "training_curve.csv")
ALIAS_FILE = "production.json"


class RegistryError(RuntimeError):
    """A registry operation cannot be done (no such version, nothing to roll back to)."""


@dataclass(frozen=True)
class Registry:
    root: Path

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if p.is_dir() and _number(p.name) > 0]
        return sorted(found, key=_number)

    def path(self, version: str) -> Path:
        if version not in self.versions():
            raise RegistryError(f"no model version {version!r} in {self.root}")
        return self.root / version

    def production(self) -> str | None:
        alias = self._alias()
        return alias["version"] if alias else None

    def history(self) -> list[dict[str, Any]]:
        alias = self._alias()
        return alias["history"] if alias else []

    def register(self, model_dir: Path, metadata: dict[str, Any]) -> str:
        """Copy a trained model in as the next version; the copy appears whole or not at all."""
        self.root.mkdir(parents=True, exist_ok=True)
        versions = self.versions()
        version = f"v{_number(versions[-1]) + 1 if versions else 1}"
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.root))
        for name in MODEL_FILES:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, staging / name)
        record = {"version": version, "registered_at": _now(), **metadata}
        (staging / "metadata.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        staging.rename(self.root / version)
        return version

    def set_production(self, version: str, reason: str) -> None:
        self.path(version)  # must exist
        history = [*self.history(), {"version": version, "at": _now(), "reason": reason}]
        self._write_alias({"version": version, "history": history})

    def rollback(self, to: str | None = None) -> str:
        """Point production at `to`, or at the champion before the current one."""
        current = self.production()
        if to is None:
            earlier = [entry["version"] for entry in self.history() if entry["version"] != current]
            if not earlier:
                raise RegistryError("nothing to roll back to: production has had one version")
            to = earlier[-1]
        self.set_production(to, reason=f"rollback from {current}")
        return to

    def _alias(self) -> dict[str, Any] | None:
        file = self.root / ALIAS_FILE
        return json.loads(file.read_text()) if file.is_file() else None

    def _write_alias(self, alias: dict[str, Any]) -> None:
        handle, temporary = tempfile.mkstemp(prefix=".production-", dir=self.root)
        with os.fdopen(handle, "w") as file:
            json.dump(alias, file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.root / ALIAS_FILE)  # atomic on POSIX


def _number(name: str) -> int:
    return int(name[1:]) if name.startswith("v") and name[1:].isdigit() else 0


def _now() -> str:
    return datetime.now(UTC).isoformat()


def data_hashes(lock_file: Path, stage: str = "train") -> dict[str, str]:
    """The md5 of each input of `stage` as recorded in dvc.lock (empty if not recorded)."""
    if not lock_file.is_file():
        return {}
    lock = yaml.safe_load(lock_file.read_text()) or {}
    deps = lock.get("stages", {}).get(stage, {}).get("deps", [])
    return {dep["path"]: dep.get("md5", "") for dep in deps}
