"""Model versions and the production alias: crash-safe, verified, one writer at a time.

```
models/registry/
  vN/              a registered model: its files, and metadata.json (metrics, the run that made
                   it, the data hashes from dvc.lock, and the sha256 of every file)
  production.json  {"version": "vN", ...}: the alias, replaced with one atomic rename
  history.jsonl    one line per alias move, appended: what rollback reads
  .lock            held (flock) by whoever numbers, registers or moves the alias
```

A reader sees the old champion or the new one, never half of one. `promote` registers and moves
the alias as one idempotent step: a model whose files are already registered (a retry after a
crash between the two) reuses its version. Nothing becomes production unverified: every file
present and equal to the checksum recorded when it was registered.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from mtlrec.errors import UserError

REQUIRED_FILES = ("model.safetensors", "config.json", "feature_spec.json")
MODEL_FILES = (*REQUIRED_FILES, "schema.json", "training_curve.csv")
JSON_FILES = ("config.json", "feature_spec.json", "schema.json")
ALIAS_FILE = "production.json"
HISTORY_FILE = "history.jsonl"
METADATA_FILE = "metadata.json"
LOCK_FILE = ".lock"
VERSION = re.compile(r"v[1-9][0-9]{0,8}")


class RegistryError(UserError, RuntimeError):
    """A registry operation cannot be done: no such version, a damaged file, a broken model."""


def check_version(name: str) -> str:
    """`name` if it is a version name (v1, v2, ...), else RegistryError: it becomes a path."""
    if not isinstance(name, str) or not VERSION.fullmatch(name):
        raise RegistryError(f"{name!r} is not a model version (v1, v2, ...)")
    return name


def file_checksums(folder: Path, names: tuple[str, ...] = MODEL_FILES) -> dict[str, str]:
    """sha256 of each of `names` present in `folder`."""
    return {name: _sha256(folder / name) for name in names if (folder / name).is_file()}


@dataclass(frozen=True)
class Registry:
    root: Path

    # --- reading ------------------------------------------------------------------------------

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if p.is_dir() and VERSION.fullmatch(p.name)]
        return sorted(found, key=_number)

    def path(self, version: str) -> Path:
        folder = self.root / check_version(version)
        if not folder.is_dir():
            raise RegistryError(f"no model version {version!r} in {self.root}")
        return folder

    def production(self) -> str | None:
        """The production version, None before the first promotion."""
        alias = self._read_json(self.root / ALIAS_FILE)
        if alias is None:
            return None
        version = alias.get("version") if isinstance(alias, dict) else None
        if not isinstance(version, str) or not VERSION.fullmatch(version):
            raise RegistryError(self._damaged(ALIAS_FILE, f"no valid version in {alias!r}"))
        return version

    def history(self) -> list[dict[str, Any]]:
        """Every alias move, oldest first. A line torn by a crash mid-append is skipped."""
        file = self.root / HISTORY_FILE
        if not file.is_file():
            return self._legacy_history()
        entries = []
        for line in file.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and VERSION.fullmatch(str(entry.get("version", ""))):
                entries.append(entry)
        return entries

    def metadata(self, version: str) -> dict[str, Any]:
        name = f"{check_version(version)}/{METADATA_FILE}"
        data = self._read_json(self.path(version) / METADATA_FILE)
        if not isinstance(data, dict):
            raise RegistryError(self._damaged(name, "missing or not a JSON object"))
        return data

    def problems(self, version: str) -> list[str]:
        """Why `version` cannot serve (empty: it can): missing, damaged or altered files."""
        try:
            folder = self.path(version)
            recorded = self.metadata(version).get("files")
        except RegistryError as error:
            return [str(error)]
        found = []
        for name in REQUIRED_FILES:
            if not (folder / name).is_file():
                found.append(f"{version}/{name} is missing")
        for name, digest in (recorded or {}).items():
            if (folder / name).is_file() and _sha256(folder / name) != digest:
                found.append(f"{version}/{name} does not match its checksum (damaged or altered)")
        for name in JSON_FILES:
            if (folder / name).is_file() and name not in (recorded or {}):
                try:  # a version registered before checksums: at least readable JSON
                    json.loads((folder / name).read_text())
                except (ValueError, UnicodeDecodeError) as error:
                    found.append(f"{version}/{name} is not valid JSON ({error})")
        return found

    def healthy(self) -> list[str]:
        return [version for version in self.versions() if not self.problems(version)]

    def version_of_run(self, run_id: str) -> str | None:
        """The version registered by the pipeline run `run_id`, if any."""
        for version in reversed(self.versions()):
            try:
                if self.metadata(version).get("run_id") == run_id:
                    return version
            except RegistryError:
                continue
        return None

    def replaced_by(self, version: str) -> str | None:
        """The production version that `version`'s latest move into production replaced."""
        history = self.history()
        for index in range(len(history) - 1, -1, -1):
            if history[index]["version"] == version:
                return history[index - 1]["version"] if index > 0 else None
        return None

    def holding(self, model_dir: Path) -> str | None:
        """The version whose files are exactly those of `model_dir`, if one is registered."""
        wanted = file_checksums(Path(model_dir))
        for version in reversed(self.versions()):
            try:
                if self.metadata(version).get("files") == wanted:
                    return version
            except RegistryError:
                continue
        return None

    # --- writing ------------------------------------------------------------------------------

    def register(self, model_dir: Path, metadata: dict[str, Any]) -> str:
        """Copy a trained model in as the next version (whole or not at all); a model already
        registered keeps its version."""
        with self._locked():
            return self._register(Path(model_dir), metadata)

    def promote(self, model_dir: Path, metadata: dict[str, Any], reason: str) -> str:
        """Register `model_dir` and make it production, as one idempotent step: a retry after
        a crash anywhere in between completes it with the same version."""
        with self._locked():
            version = self._register(Path(model_dir), metadata)
            self._require_healthy(version)
            if self._current() != version:
                self._move_alias(version, reason)
            return version

    def set_production(self, version: str, reason: str) -> None:
        with self._locked():
            self._require_healthy(version)
            self._move_alias(version, reason)

    def rollback(self, to: str | None = None) -> str:
        """Point production at `to`, or at the champion before the current one; refused when
        that version is broken."""
        with self._locked():
            current = self._current()
            if to is None:
                earlier = [e["version"] for e in self.history() if e["version"] != current]
                if not earlier:
                    raise RegistryError("nothing to roll back to: production has had one version")
                to = earlier[-1]
            self._require_healthy(to)
            self._move_alias(to, reason=f"rollback from {current or 'none'}")
            return to

    # --- internals ----------------------------------------------------------------------------

    def _register(self, model_dir: Path, metadata: dict[str, Any]) -> str:
        missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
        if missing:
            raise RegistryError(f"{model_dir} is not a model: it lacks {', '.join(missing)}")
        existing = self.holding(model_dir)
        if existing is not None:
            return existing
        self.root.mkdir(parents=True, exist_ok=True)
        versions = self.versions()
        version = f"v{_number(versions[-1]) + 1 if versions else 1}"
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.root))
        for name in MODEL_FILES:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, staging / name)
        record = {
            "version": version,
            "registered_at": _now(),
            **metadata,
            "files": file_checksums(staging),
        }
        write_atomic(staging / METADATA_FILE, json.dumps(record, indent=2, default=str) + "\n")
        _fsync_dir(staging)
        staging.rename(self.root / version)
        _fsync_dir(self.root)
        return version

    def _require_healthy(self, version: str) -> None:
        problems = self.problems(version)
        if problems:
            healthy = [v for v in self.healthy() if v != version]
            hint = f"healthy versions: {', '.join(healthy)}" if healthy else "no healthy version"
            raise RegistryError(
                f"{version} cannot become production: {'; '.join(problems)} ({hint})"
            )

    def _current(self) -> str | None:
        try:
            return self.production()
        except RegistryError:
            return None  # a damaged alias is replaced by the next move

    def _move_alias(self, version: str, reason: str) -> None:
        if not (self.root / HISTORY_FILE).is_file():
            for entry in self._legacy_history():  # carry an older registry's history over
                self._append_history(entry)
        entry = {"version": version, "at": _now(), "reason": reason}
        self._append_history(entry)
        write_atomic(self.root / ALIAS_FILE, json.dumps(entry, indent=2) + "\n")

    def _append_history(self, entry: dict[str, Any]) -> None:
        with (self.root / HISTORY_FILE).open("a") as file:
            file.write(json.dumps(entry) + "\n")
            file.flush()
            os.fsync(file.fileno())

    def _legacy_history(self) -> list[dict[str, Any]]:
        # Registries written before history.jsonl kept the history inside production.json.
        try:
            alias = self._read_json(self.root / ALIAS_FILE)
        except RegistryError:
            return []
        history = alias.get("history") if isinstance(alias, dict) else None
        return [dict(entry) for entry in history or [] if isinstance(entry, dict)]

    def _read_json(self, file: Path) -> Any:
        if not file.is_file():
            return None
        try:
            return json.loads(file.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise RegistryError(self._damaged(file.relative_to(self.root), str(error))) from None

    def _damaged(self, name: object, detail: str) -> str:
        healthy = ", ".join(self.healthy_names()) or "none"
        return (
            f"{self.root / str(name)} is damaged ({detail}); `mtlrec rollback --to VERSION` "
            f"rewrites the alias (healthy versions: {healthy})"
        )

    def healthy_names(self) -> list[str]:
        """Versions with every required file present (cheap: no checksums, no JSON)."""
        return [
            v for v in self.versions() if all((self.root / v / n).is_file() for n in REQUIRED_FILES)
        ]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                for stale in self.root.glob(".v*-*"):  # a crashed registration's partial copy
                    shutil.rmtree(stale, ignore_errors=True)
                for stale in self.root.glob(f".{ALIAS_FILE}-*"):  # a crashed alias write
                    stale.unlink(missing_ok=True)
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _number(name: str) -> int:
    return int(name[1:]) if VERSION.fullmatch(name) else 0


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(target: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    with os.fdopen(handle, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, target)  # atomic on POSIX


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def data_hashes(lock_file: Path, stage: str = "train") -> dict[str, str]:
    """The md5 of each input of `stage` as recorded in dvc.lock (empty if not recorded)."""
    if not lock_file.is_file():
        return {}
    try:
        lock = yaml.safe_load(lock_file.read_text()) or {}
    except yaml.YAMLError:
        return {}  # provenance only: a damaged lock must not block a promotion
    deps = lock.get("stages", {}).get(stage, {}).get("deps", []) if isinstance(lock, dict) else []
    return {dep["path"]: dep.get("md5", "") for dep in deps if isinstance(dep, dict)}
