"""Data-parallel training under `torchrun` (gloo on CPU): the same `train.run` on N processes.

`torchrun --nproc-per-node 2 -m mtlrec.cli train ...` starts two processes with RANK and
WORLD_SIZE set. Every rank draws the same shuffled order (same seeds) and takes every N-th row of
each global batch, so one optimizer step still sees `batch_size` rows and the run follows the same
schedule as a single process; DDP averages the gradients, so the weights stay identical on every
rank. Only rank 0 writes files. Without torchrun (WORLD_SIZE unset) nothing here does anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

BACKEND = "gloo"  # CPU; NCCL would need GPUs
# Below this many training rows a second process (~5 s of imports, loading and gloo set-up)
# costs more than it saves.
AUTO_MIN_ROWS = 200_000
MAX_AUTO_PROCESSES = 8
# Torch threads per training process: half the cores, at most 4. Small MLP batches gain little
# from more threads (2 threads: -25% per epoch on an idle 2-core box), while OpenMP threads
# spin-waiting on a busy one (Airflow, Feast, other jobs) made an epoch 10x slower in a
# measurement; a second process uses the other cores instead (`auto_processes`).
MAX_THREADS = 4


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch: every `size`-th one, starting at `rank`."""
        return rows[self.rank :: self.size]

    def wrap(self, module: nn.Module) -> nn.Module:
        # find_unused_parameters: with uncertainty weighting, a rank's half batch without any
        # judgement row leaves that term's log-variance out of the graph.
        if not self.distributed:
            return module
        return DistributedDataParallel(module, find_unused_parameters=True)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (the local values when not distributed)."""
        if not self.distributed:
            return values
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()


@contextmanager
def joined() -> Iterator[World]:
    """The process group that torchrun describes in the environment (none: a world of one);
    a group this call created is destroyed on exit, one the caller made is left alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield World()
        return
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(BACKEND)
    try:
        yield World(dist.get_rank(), dist.get_world_size())
    finally:
        if owned:
            dist.destroy_process_group()


def auto_processes(train_file: Path) -> int:
    """Processes for training on `train_file`: one per `threads_per_process()` cores (both cores
    of a 2-core machine, each on one thread: OpenMP threads of one process spin-wait on a busy
    machine, processes do not), or one for a small split."""
    rows = pq.read_metadata(train_file).num_rows if Path(train_file).is_file() else 0
    if rows < AUTO_MIN_ROWS:
        return 1
    cores = len(os.sched_getaffinity(0))
    return max(1, min(MAX_AUTO_PROCESSES, cores // threads_per_process()))


def threads_per_process() -> int:
    return max(1, min(MAX_THREADS, len(os.sched_getaffinity(0)) // 2))


def launch(nproc: int, argv: list[str]) -> int:
    """Run `mtlrec <argv>` under torchrun on `nproc` local processes; its exit status."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={nproc}", "-m", "mtlrec.cli", *argv]
    return subprocess.run(command, check=False).returncode


def is_worker() -> bool:
    """True in a process that torchrun started (it sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def rank() -> int:
    return int(os.environ.get("RANK", "0"))
