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


def numpy_blas_kernels() -> str:
    """numpy's BLAS as loaded in this process: its library, version and the kernels it runs,
    and `OPENBLAS_CORETYPE` where that chose them, e.g. "OpenBLAS 0.3.31.188.0, SkylakeX kernels".

    Why: OpenBLAS picks its kernels once, as numpy loads it, from the CPU or from
    `OPENBLAS_CORETYPE`, and some machines set that variable (with `OPENBLAS_L2_SIZE`) to
    older kernels for safety. On an AMD EPYC Zen 5 its AVX2 ("Haswell") kernels multiply fp32
    at half the rate of the AVX-512 ones it picks itself, one thread, (2,048, 313) x (313, 914):
    119 against 237 GFLOP/s. Only fp32 training on an AMD CPU multiplies in numpy's BLAS
    (`layers._Product`), but a number measured that way means little without this."""
    import numpy  # noqa: F401  (loads the library threadpoolctl reads)
    from threadpoolctl import threadpool_info

    found = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    if not found:
        return "none found"
    # numpy's own before another package's copy (scipy bundles one too)
    info = next((i for i in found if "numpy" in i.get("filepath", "")), found[0])
    name = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}.get(
        info.get("internal_api", ""), info.get("internal_api", "unknown")
    )
    text = f"{name} {info.get('version') or ''}".rstrip()
    if info.get("architecture"):
        text += f", {info['architecture']} kernels"
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if name == "OpenBLAS" and forced is not None:
        text += f" (OPENBLAS_CORETYPE={forced})"
    return text
