"""Choosing the device, and the numeric precision the hardware runs well.

Capabilities come from what PyTorch and oneDNN report, not from /proc/cpuinfo,
so limiting oneDNN (`ONEDNN_MAX_CPU_ISA=AVX2`) makes a machine answer like the
older CPU it imitates. Training and translation pick their precision through
the one function `resolve_precision`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal, Optional

import torch

from nmt.errors import NmtError

log = logging.getLogger(__name__)

Purpose = Literal["training", "translation"]
SETTING = {"training": "training.precision", "translation": "--precision"}


ONEDNN_KERNEL_CACHE = 64  # compiled oneDNN kernels kept (oneDNN's default: 1,024)


def limit_onednn_kernel_cache() -> None:
    """Keep at most ONEDNN_KERNEL_CACHE compiled oneDNN kernels, unless the user chose.

    oneDNN compiles a kernel per operator and shape and keeps 1,024 of them; token-based
    batches (and beams that shrink as sentences finish) keep changing the shapes, and
    bf16 training grew to 2.6-2.9 GB. With 64 a 60-step bf16 run of the reference config
    peaked at 1.41 GB instead of 1.86 GB, at the same speed.
    oneDNN reads the setting when it first needs the cache: call this early.
    """
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_KERNEL_CACHE))


def resolve_device(name: str) -> torch.device:
    """`auto` means the first GPU if there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NmtError(f"device {name!r} requested but no CUDA GPU is available "
                       "(use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise NmtError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None


@dataclass(frozen=True)
class CudaDevice:
    index: int
    name: str
    capability: str  # compute capability, "8.0"
    memory_gib: float
    bf16: bool  # native bf16 (compute capability 8.0 or newer, or ROCm)


@dataclass(frozen=True)
class Capabilities:
    """What this process's PyTorch can run fast, as PyTorch and oneDNN report it."""

    cpu_name: str
    cpu_capability: str  # the kernel set PyTorch's own CPU operators use: AVX2, AVX512, ...
    cpu_bf16: bool  # oneDNN runs bf16 (the LSTM among others) on this CPU
    cpu_bf16_instructions: str  # "AVX-512 BF16", "AMX", both joined by "+", or "" (emulated)
    cpu_amx: bool
    int8_exact: bool  # int8 matrix products sum exactly (see `int8_matmul_is_exact`)
    cuda: tuple[CudaDevice, ...]

    @property
    def cpu_bf16_native(self) -> bool:
        """bf16 that is faster than fp32: oneDNN supports it and the CPU has bf16 units."""
        return self.cpu_bf16 and bool(self.cpu_bf16_instructions)


def int8_matmul_is_exact() -> bool:
    """Whether `torch._int_mm`, which int8 translation uses, sums int8 products exactly.

    oneDNN's int8 kernels for CPUs without VNNI (AVX2 alone, or any CPU under
    ONEDNN_MAX_CPU_ISA=AVX2) add pairs of products in saturating 16-bit
    arithmetic, which turns translations into garbage; so ask, with large values.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(-127, 128, (17, 256), dtype=torch.int8, generator=generator)
    b = torch.randint(-127, 128, (256, 32), dtype=torch.int8, generator=generator)
    try:
        return torch.equal(torch._int_mm(a, b), a.int() @ b.int())
    except RuntimeError:  # no int8 kernel at all
        return False


def detect_capabilities() -> Capabilities:
    """Ask PyTorch and oneDNN (the tests replace this function to imitate other machines)."""
    # torch.cpu.get_capabilities (cpuinfo) says which instructions exist; oneDNN's own
    # bf16 check says whether it will use them, and honours ONEDNN_MAX_CPU_ISA.
    features = getattr(torch.cpu, "get_capabilities", dict)()
    units = [name for key, name in (("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX"),
                                    ("bf16", "Arm BF16")) if features.get(key)]
    cuda = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            cuda.append(CudaDevice(index, props.name, f"{props.major}.{props.minor}",
                                   round(props.total_memory / 2 ** 30, 1),
                                   bool(torch.version.hip) or props.major >= 8))
    return Capabilities(
        cpu_name=str(features.get("cpu_name", "unknown")),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        cpu_bf16=torch.backends.mkldnn.is_available()
        and torch.ops.mkldnn._is_mkldnn_bf16_supported(),
        cpu_bf16_instructions="+".join(units),
        cpu_amx=bool(features.get("amx_tile")),
        int8_exact=int8_matmul_is_exact(),
        cuda=tuple(cuda))


def choose_precision(requested: str, device: torch.device, purpose: Purpose,
                     caps: Capabilities) -> tuple[str, str]:
    """The precision to run `requested` at on `device`, and why, in a few words.

    `auto` is bf16 where the hardware runs it natively (CPU: AVX-512 BF16 or AMX;
    GPU: compute capability 8.0+), else fp16 for GPU training and fp32 elsewhere.
    An explicit choice the hardware cannot run is an NmtError naming what is missing.
    """
    setting = SETTING[purpose]
    if device.type == "cuda":
        return _choose_on_gpu(requested, device, purpose, caps)
    if requested == "fp16":
        raise NmtError(f"{setting} fp16 needs a CUDA GPU; use auto or fp32 on {device.type}")
    if device.type != "cpu":  # e.g. mps: nothing to ask, so auto stays with fp32
        return ("fp32", f"auto: {device.type}") if requested == "auto" else (requested, "requested")
    if requested == "auto":
        if caps.cpu_bf16_native:
            return "bf16", f"auto: this CPU has {caps.cpu_bf16_instructions}"
        return "fp32", ("auto: this CPU has no AVX-512 BF16 or AMX" if caps.cpu_bf16
                        else "auto: oneDNN has no bf16 for this CPU")
    if requested == "bf16" and not caps.cpu_bf16:
        raise NmtError(f"{setting} bf16: oneDNN has no bf16 kernels for this CPU (they need "
                       "AVX-512 or AMX; `nmt info` shows what it has); use fp32 or auto")
    if requested == "bf16" and not caps.cpu_bf16_native:
        return "bf16", "requested; without AVX-512 BF16 or AMX it is emulated, likely slower"
    if requested == "int8" and not caps.int8_exact:
        raise NmtError(f"{setting} int8: this CPU's int8 matrix product is not exact (it "
                       "needs VNNI: AVX-512 VNNI, AVX-VNNI or AMX); use fp32 or auto")
    return requested, "requested"


def _choose_on_gpu(requested: str, device: torch.device, purpose: Purpose,
                   caps: Capabilities) -> tuple[str, str]:
    setting = SETTING[purpose]
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= len(caps.cuda):
        raise NmtError(f"device {device} requested but this machine has only "
                       f"{len(caps.cuda)} CUDA GPU(s), numbered from 0")
    gpu = caps.cuda[index]
    if requested == "auto":
        if gpu.bf16:
            return "bf16", f"auto: {gpu.name} supports bf16"
        return ("fp16" if purpose == "training" else "fp32"), f"auto: {gpu.name} has no bf16"
    if requested == "bf16" and not gpu.bf16:
        instead = "fp16, fp32 or auto" if purpose == "training" else "fp32 or auto"
        raise NmtError(f"{setting} bf16: {gpu.name} (compute capability {gpu.capability}) "
                       f"has no native bf16; use {instead}")
    if requested == "int8":
        raise NmtError(f"{setting} int8 runs on the CPU only (use --device cpu)")
    return requested, "requested"


def resolve_precision(requested: str, device: torch.device, purpose: Purpose) -> str:
    """`choose_precision` for this machine, logging the choice and the reason."""
    precision, why = choose_precision(requested, device, purpose, detect_capabilities())
    log.info("%s precision: %s (%s)", purpose, precision, why)
    return precision


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for a `training.precision` setting (None: plain fp32)."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[
        resolve_precision(precision, device, "training")]
