"""The training state that `last.pt` carries besides the weights, so a run resumes exactly.

`best.pt` and other translation checkpoints carry none of it. Everything here
is plain data and tensors, so the checkpoint loads with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass
class Progress:
    """Where a run stands; the same in every process."""

    step: int = 0  # optimiser updates done
    epoch: int = 1
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    bad_steps_in_a_row: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0  # forward, backward and update only
    wall_seconds: float = 0.0  # the whole loop, validations included
    window_tokens: int = 0  # target tokens since the last validation, all processes


@dataclass
class TrainState:
    """Everything a resumed run needs that the weights and the config do not say."""

    progress: Progress
    policy: dict[str, Any]  # TrainingPolicy.state_dict()
    optimizer: dict[str, Any]
    grad_scaler: dict[str, Any]
    # What each process has of its own, in rank order: its random number generators
    # ("torch_rng", "cuda_rng") and its share of the loss window ("window_loss").
    per_rank: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"progress": dataclasses.asdict(self.progress), "policy": self.policy,
                "optimizer": self.optimizer, "grad_scaler": self.grad_scaler,
                "per_rank": self.per_rank}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TrainState":
        return cls(Progress(**raw["progress"]), raw["policy"], raw["optimizer"],
                   raw["grad_scaler"], raw["per_rank"])


def upgrade_format_1(training: dict[str, Any]) -> dict[str, Any]:
    """Format 1 kept early stopping in the progress record, a ReduceLROnPlateau state,
    and only rank 0's share of the loss window."""
    progress = dict(training["progress"])
    window_loss = progress.pop("window_loss")
    per_rank = [{"torch_rng": rng["torch"], "cuda_rng": rng["cuda"],
                 "window_loss": window_loss if rank == 0 else 0.0}
                for rank, rng in enumerate(training["rng_per_rank"])]
    scheduler = training["scheduler"]
    policy = {"best_perplexity": progress.pop("best_perplexity", math.inf),
              "validations_without_improvement": progress.pop(
                  "validations_without_improvement", 0),
              "plateau_lr": training["optimizer"]["param_groups"][0]["lr"],
              "plateau_best": scheduler["best"], "plateau_bad": scheduler["num_bad_epochs"]}
    return {"progress": progress, "policy": policy, "optimizer": training["optimizer"],
            "grad_scaler": training.get("grad_scaler") or {},
            "per_rank": per_rank}
