"""The workspace lock: one writing stage at a time in a checkout, whoever starts it.

Every `mtlrec` stage that writes takes it (the CLI does, so `dvc repro` is covered), and so do the
Airflow tasks around their DVC commands. A process that holds it passes that down to the
processes it starts (`dvc repro` -> `mtlrec train`) through `LOCK_ENV`, so they run under it
instead of waiting on their own parent. A second writer waits, and says whom it waits for.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_ENV = "MTLREC_WORKSPACE_LOCK"  # the lock file that an ancestor process holds


def lock_file(root: Path) -> Path:
    """Beside DVC's own temporary files when the workspace has them (ignored by git)."""
    root = Path(root).resolve()
    folder = root / ".dvc" / "tmp" if (root / ".dvc").is_dir() else root
    return folder / "mtlrec-workspace.lock"


@contextmanager
def locked(root: Path, holder: str) -> Iterator[None]:
    """Hold the workspace lock of `root`; `holder` says who holds it, to whoever waits."""
    path = lock_file(root)
    if os.environ.get(LOCK_ENV) == str(path):
        yield  # an ancestor holds it for us
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            other = handle.read().strip() or "another process"
            note = f"waiting for the workspace lock of {root} ({other})"
            print(note, file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}: {holder}\n")
        handle.flush()
        before = os.environ.get(LOCK_ENV)
        os.environ[LOCK_ENV] = str(path)
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(LOCK_ENV, None)
            else:
                os.environ[LOCK_ENV] = before
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
