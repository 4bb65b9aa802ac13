"""Choosing the device to run on."""

from __future__ import annotations

from typing import Optional

import torch

from nmt.errors import NmtError


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


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for a `training.precision` setting (None: plain fp32)."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise NmtError("training.precision fp16 needs a CUDA GPU (use bf16 or fp32 on CPU)")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
