"""`feast plan` and `feast apply` that report only real changes, in a child process.

Feast's own plan compares each definition with the registry's copy including its data
source's `meta` (created and last-updated timestamps), so every view of a re-parsed repo reads
"Updated" with two protobuf dumps (~270 lines for our repo) even when nothing changed, which
hides the one line a person checks before applying a new view. This runs Feast's own parse,
plan and apply (`feast.repo_operations`), and reports an object only when its definition
differs with the timestamps set aside:

    + feature view item_reviews          (created)
    ~ feature view item_profile: schema  (updated: the properties that differ)
    - feature service mtl_v0             (deleted)

Run as `python -m mtlrec.features.feast_repo {plan|apply} REPO FEATURE_STORE_YAML`: Feast
imports the repo's modules from the repo's folder (chdir, sys.path), which stays in the child.
Feast's own output goes to stderr, for `--debug` and the logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

TIMESTAMP_KEYS = frozenset({"meta", "createdTimestamp", "lastUpdatedTimestamp"})
SYMBOLS = {"CREATE": "+", "UPDATE": "~", "DELETE": "-"}


def comparable(value: Any) -> Any:
    """A definition's property as plain data with its timestamps left out."""
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import Message

    if isinstance(value, Message):
        return _drop_timestamps(MessageToDict(value))
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    if hasattr(value, "items"):  # map fields (tags): keys and values, not the keys alone
        return {key: comparable(item) for key, item in value.items()}
    try:
        return [comparable(item) for item in value]  # repeated fields
    except TypeError:
        return value


def _drop_timestamps(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _drop_timestamps(v) for k, v in data.items() if k not in TIMESTAMP_KEYS}
    if isinstance(data, list):
        return [_drop_timestamps(item) for item in data]
    return data


def real_changes(registry_diff: Any) -> list[dict[str, Any]]:
    """The objects whose definitions differ from the registry's, timestamps aside."""
    from feast.diff.property_diff import TransitionType
    from feast.feature_view import DUMMY_ENTITY_NAME
    from feast.infra.registry.registry import FeastObjectType

    changes = []
    for diff in registry_diff.feast_object_diffs:
        transition = diff.transition_type
        if diff.name == DUMMY_ENTITY_NAME or transition == TransitionType.UNCHANGED:
            continue
        if diff.feast_object_type == FeastObjectType.DATA_SOURCE:
            continue  # shown through the views that read them (as Feast does)
        properties = [
            p.property_name
            for p in diff.feast_object_property_diffs
            if comparable(p.val_existing) != comparable(p.val_declared)
        ]
        if transition == TransitionType.UPDATE and not properties:
            continue  # only timestamps moved
        changes.append(
            {
                "change": transition.name,
                "kind": diff.feast_object_type.value,
                "name": diff.name,
                "properties": properties,
            }
        )
    return changes


def describe(changes: list[dict[str, Any]]) -> str:
    """One line per changed object, or one line saying nothing changes."""
    if not changes:
        return "Feast registry: no changes (every definition is as applied)"
    lines = []
    for change in changes:
        line = f"{SYMBOLS[change['change']]} {change['kind'].lower()} {change['name']}"
        if change["properties"]:
            line += f": {', '.join(change['properties'])}"
        lines.append(line)
    return "\n".join(lines)


def run(action: str, repo: Path, fs_yaml: Path) -> list[dict[str, Any]]:
    """Plan (and with `apply`, apply) the repo with Feast's own functions; return the real
    changes. Feast's printing goes to stderr."""
    from feast.repo_config import load_repo_config
    from feast.repo_operations import (
        _get_repo_contents,
        _get_store_and_registry,
        apply_total_with_repo_instance,
    )

    repo = repo.resolve()
    config = load_repo_config(repo, fs_yaml.resolve())
    os.chdir(repo)
    sys.path.insert(0, str(repo))
    with contextlib.redirect_stdout(sys.stderr):
        contents = _get_repo_contents(repo, config.project, config)
        store, registry = _get_store_and_registry(config)
        registry_diff, _, _ = store.plan(contents)
        changes = real_changes(registry_diff)
        if action == "apply":
            apply_total_with_repo_instance(store, config.project, registry, contents, False)
    return changes


def main() -> None:
    action, repo, fs_yaml = sys.argv[1:4]
    if action not in ("plan", "apply"):
        raise SystemExit(f"usage: python -m {__spec__.name} plan|apply REPO FEATURE_STORE_YAML")
    changes = run(action, Path(repo), Path(fs_yaml))
    print(json.dumps(changes))


if __name__ == "__main__":
    main()
