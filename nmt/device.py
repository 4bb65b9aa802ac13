"""Choosing the device to run on."""

from __future__ import annotations

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
