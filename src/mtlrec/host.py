"""The machine a number was measured on: its CPU, cores and the instruction sets that set the
training precision and the matrix-product rates.

The same code on these 2-core VMs ran at 2.09x torch-rechub's samples/s on one CPU kind and
3.46x on another, so a benchmark's table and the training timings name the host they ran on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# The flags that decide this project's speed: fp32 GEMM width, and bf16 dot products in
# hardware (`train.precision: auto` trains the bottom's first layer in bf16 with either).
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class Host:
    cpu: str  # "model name", or "unknown CPU"
    vendor: str | None  # "vendor_id": GenuineIntel, AuthenticAMD
    family: str | None  # "cpu family" and "model": which generation (25/17: AMD Zen 4)
    model: str | None
    cores: int  # the cores this process may run on
    flags: frozenset[str]  # every flag of the first processor

    @property
    def native_bf16(self) -> bool:
        """Multiplies bf16 in hardware (x86's AVX512-BF16 or AMX-BF16)."""
        return bool(self.flags & BF16_FLAGS)

    @property
    def amd(self) -> bool:
        """An AMD CPU, where torch's MKL multiplies fp32 on a slower path than on an Intel one."""
        return self.vendor == "AuthenticAMD"

    def __str__(self) -> str:
        generation = f" (family {self.family}, model {self.model})" if self.family else ""
        listed = " ".join(flag for flag in FLAGS if flag in self.flags) or "no AVX2"
        cores = f"{self.cores} core" + ("s" if self.cores != 1 else "")
        return f"{self.cpu}{generation}, {cores}, {listed}"


def parse_cpuinfo(text: str, cores: int) -> Host:
    """The first processor block of a /proc/cpuinfo text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough: a VM's cores are all alike
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return Host(
        cpu=fields.get("model name", "unknown CPU"),
        vendor=fields.get("vendor_id"),
        family=fields.get("cpu family"),
        model=fields.get("model"),
        cores=cores,
        flags=frozenset(fields.get("flags", "").split()),
    )


def read_host() -> Host:
    """This machine; a CPU of unknown name and no flags where there is no /proc/cpuinfo."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        text = ""
    # The cores this process may use, counted as `distributed.threads_per_process` counts them.
    return parse_cpuinfo(text, len(os.sched_getaffinity(0)))
