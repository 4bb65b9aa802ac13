"""`nmt info`: the software and hardware facts that decide speed and precision.

Meant to be pasted into bug reports: versions, the CPU as PyTorch and oneDNN
see it (kernel set, bf16, AMX, exact int8), the CUDA devices, and what
`precision: auto` picks on each.
"""

from __future__ import annotations

import dataclasses
import os
import platform

import torch

from nmt import __version__
from nmt.device import Capabilities, choose_precision, detect_capabilities
from nmt.layers import onednn_available, onednn_in_use

# Settings that change what PyTorch and oneDNN use, worth seeing in a bug report.
ENVIRONMENT = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS",
               "NMT_CPU_MATMUL", "CUDA_VISIBLE_DEVICES")


def machine_report(caps: Capabilities | None = None) -> dict:
    """Everything `nmt info` prints, as plain JSON-ready values."""
    caps = caps or detect_capabilities()
    return {
        "nmt": __version__,
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda or torch.version.hip,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "environment": {name: os.environ[name] for name in ENVIRONMENT if name in os.environ},
        "cpu": {
            "name": caps.cpu_name,
            "architecture": platform.machine(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "kernels": caps.cpu_capability,
            "bf16": caps.cpu_bf16,
            "bf16_native": caps.cpu_bf16_native,
            "bf16_instructions": caps.cpu_bf16_instructions,
            "amx": caps.cpu_amx,
            "int8_exact": caps.int8_exact,
            "fp32_products": "onednn" if onednn_in_use() else "pytorch",
            "auto_precision": _auto(torch.device("cpu"), caps),
        },
        "cuda": [dict(dataclasses.asdict(gpu),
                      auto_precision=_auto(torch.device("cuda", gpu.index), caps))
                 for gpu in caps.cuda],
    }


def _auto(device: torch.device, caps: Capabilities) -> dict:
    training, why = choose_precision("auto", device, "training", caps)
    translation, _ = choose_precision("auto", device, "translation", caps)
    return {"training": training, "translation": translation, "why": why.removeprefix("auto: ")}


def report_text(report: dict) -> str:
    """The report as a few lines of text."""
    cpu = report["cpu"]
    if cpu["bf16_native"]:
        bf16 = f"yes, native ({cpu['bf16_instructions']})"
    elif cpu["bf16"]:
        bf16 = "emulated by oneDNN (no AVX-512 BF16 or AMX), so auto keeps fp32"
    else:
        bf16 = "no (oneDNN has no bf16 kernels for this CPU)"
    lines = [
        f"nmt {report['nmt']}, torch {report['torch']}, Python {report['python']}",
        f"platform: {report['platform']}",
        f"CPU: {cpu['name']} ({cpu['architecture']}), {cpu['cores']} cores, "
        f"{cpu['threads']} PyTorch threads",
        f"  PyTorch CPU kernels: {cpu['kernels']}",
        f"  bf16: {bf16}",
        f"  AMX: {'yes' if cpu['amx'] else 'no'}",
        "  int8: " + ("exact int8 products (VNNI)" if cpu["int8_exact"]
                      else "not available (no exact int8 product: needs VNNI)"),
        f"  fp32 products: {_products(cpu['fp32_products'])}",
        _auto_line(cpu["auto_precision"]),
    ]
    if report["environment"]:
        lines.append("environment: " + " ".join(f"{k}={v}"
                                                 for k, v in report["environment"].items()))
    if not report["cuda"]:
        built = f"with CUDA {report['cuda_build']}" if report["cuda_build"] else "for CPU only"
        lines.append(f"CUDA: no device (torch built {built})")
    for gpu in report["cuda"]:
        lines.append(f"CUDA {gpu['index']}: {gpu['name']}, compute capability "
                     f"{gpu['capability']}, {gpu['memory_gib']} GiB, "
                     f"bf16 {'yes' if gpu['bf16'] else 'no'}")
        lines.append(_auto_line(gpu["auto_precision"]))
    return "\n".join(lines)


def _products(backend: str) -> str:
    if backend == "onednn":
        return "oneDNN (NMT_CPU_MATMUL=pytorch for PyTorch's own)"
    return "PyTorch's own" + (" (NMT_CPU_MATMUL=pytorch)" if onednn_available()
                              else " (this PyTorch has no oneDNN)")


def _auto_line(auto: dict) -> str:
    return (f"  precision auto: training {auto['training']}, translation {auto['translation']} "
            f"({auto['why']})")
