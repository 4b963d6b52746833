"""mtlrec.host: the CPU a number was measured on, from /proc/cpuinfo."""

import os

import pytest
import threadpoolctl

from mtlrec.host import numpy_blas_kernels, parse_cpuinfo, read_host

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512_bf16 avx512_vnni

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9999 (not read: the first processor is enough)
flags\t\t: fpu
"""
SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
"""
ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu avx avx2 fma
"""


def test_the_first_processor_names_the_host_and_its_speed_flags() -> None:
    host = parse_cpuinfo(ZEN4, cores=2)
    assert str(host) == "AMD EPYC (family 25, model 17), 2 cores, avx2 avx512f avx512_bf16"
    assert host.native_bf16 and host.amd
    intel = parse_cpuinfo(SAPPHIRE_RAPIDS, cores=2)
    assert str(intel).endswith("(family 6, model 143), 2 cores, avx2 avx512f avx512_bf16 amx_bf16")
    assert intel.native_bf16 and not intel.amd
    zen3 = parse_cpuinfo(ZEN3, cores=2)
    assert str(zen3) == "AMD EPYC 7B13 (family 25, model 1), 2 cores, avx2"
    assert not zen3.native_bf16 and zen3.amd  # "auto" trains in fp32 there, through numpy's BLAS


def test_a_machine_without_cpuinfo_is_an_unknown_cpu_without_bf16() -> None:
    host = parse_cpuinfo("", cores=4)
    assert str(host) == "unknown CPU, 4 cores, no AVX2" and not host.native_bf16
    assert host.vendor is None and not host.amd
    arm = parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd\nCPU part\t: 0xd0c\n", cores=1)
    assert str(arm) == "unknown CPU, 1 core, no AVX2"


def test_this_machine_is_read() -> None:
    host = read_host()
    assert host.cores >= 1 and f", {host.cores} core" in str(host)


def test_numpy_blas_names_the_kernels_this_process_loaded() -> None:
    """numpy's wheels bundle OpenBLAS; which kernels it runs is what threadpoolctl reads, and a
    machine that chose them with OPENBLAS_CORETYPE is named too."""
    text = numpy_blas_kernels()  # loads numpy (and its OpenBLAS) if nothing had
    info = next(i for i in threadpoolctl.threadpool_info() if "numpy" in i["filepath"])
    assert text.startswith(f"OpenBLAS {info['version']}, {info['architecture']} kernels")
    forced = os.environ.get("OPENBLAS_CORETYPE")
    assert text.endswith(f" (OPENBLAS_CORETYPE={forced})" if forced is not None else " kernels")


def test_numpy_blas_is_numpys_own_among_several(monkeypatch: pytest.MonkeyPatch) -> None:
    scipys = {"user_api": "blas", "internal_api": "openblas", "version": "0.3.28",
              "architecture": "Zen", "filepath": "/sp/scipy.libs/libscipy_openblas.so"}  # fmt: skip
    numpys = {**scipys, "version": "0.3.31", "architecture": "SkylakeX",
              "filepath": "/sp/numpy.libs/libscipy_openblas64_.so"}  # fmt: skip
    openmp = {"user_api": "openmp", "internal_api": "openmp", "filepath": "/libgomp.so"}
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [openmp, scipys, numpys])
    assert numpy_blas_kernels() == "OpenBLAS 0.3.31, SkylakeX kernels"
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [openmp])
    assert numpy_blas_kernels() == "none found"
