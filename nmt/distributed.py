"""Running under `torchrun`: process group set-up and the few collectives training needs.

`torchrun` sets RANK, LOCAL_RANK and WORLD_SIZE; without them (a plain `nmt
train`) everything here is a no-op for a single process, so the distributed and
the single-process run share one code path.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

from nmt.device import resolve_device
from nmt.errors import NmtError


COMMUNICATION_FAILURES = ("Connection closed", "Connection reset", "gloo", "NCCL", "timed out")


@dataclass
class Distributed:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over all processes (one collective for the whole list)."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        self._collective(dist.all_reduce, tensor)
        return tensor.tolist()

    def gather(self, value: float) -> list[float]:
        """Every process's `value`, in rank order."""
        if not self.enabled:
            return [value]
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        gathered = [torch.zeros_like(tensor) for _ in range(self.world_size)]
        self._collective(dist.all_gather, gathered, tensor)
        return [t.item() for t in gathered]

    def gather_objects(self, value) -> list:
        """Every process's picklable `value`, in rank order."""
        if not self.enabled:
            return [value]
        gathered = [None] * self.world_size
        self._collective(dist.all_gather_object, gathered, value)
        return gathered

    def barrier(self) -> None:
        if self.enabled:
            self._collective(dist.barrier)

    def _collective(self, operation, *args) -> None:
        with self.lost_contact_is_an_error():
            operation(*args)

    @contextlib.contextmanager
    def lost_contact_is_an_error(self) -> Iterator[None]:
        """Turn a failed collective (here or inside DDP's backward) into an `NmtError`."""
        try:
            yield
        except RuntimeError as error:
            # DDP's reducer raises a plain RuntimeError from the gloo or NCCL transport.
            message = str(error)
            if not self.enabled or not (isinstance(error, dist.DistError) or any(
                    word in message for word in COMMUNICATION_FAILURES)):
                raise
            first_line = message.strip().splitlines()[0] if message.strip() else ""
            raise NmtError(f"rank {self.rank}: lost contact with the other training processes "
                           f"(one of them failed or was stopped): {first_line}") from None


def setup_distributed(device_name: str, timeout_minutes: float) -> Distributed:
    """Join the process group if launched by torchrun; pick this process's device.

    Collectives time out after `timeout_minutes`, so a rank that dies ends the
    run with an error instead of a hang.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(device=resolve_device(device_name))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return Distributed(rank, world_size, device)


def teardown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
