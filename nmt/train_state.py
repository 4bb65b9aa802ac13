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
    window_loss: float = 0.0  # summed since the last validation
    window_tokens: int = 0


@dataclass
class TrainState:
    """Everything a resumed run needs that the weights and the config do not say."""

    progress: Progress
    policy: dict[str, Any]  # TrainingPolicy.state_dict()
    optimizer: dict[str, Any]
    grad_scaler: dict[str, Any]
    rng_per_rank: list[dict[str, Any]]  # each process's generators, in rank order

    def to_dict(self) -> dict[str, Any]:
        return {"progress": dataclasses.asdict(self.progress), "policy": self.policy,
                "optimizer": self.optimizer, "grad_scaler": self.grad_scaler,
                "rng_per_rank": self.rng_per_rank}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TrainState":
        return cls(Progress(**raw["progress"]), raw["policy"], raw["optimizer"],
                   raw["grad_scaler"], raw["rng_per_rank"])


def upgrade_format_1(training: dict[str, Any]) -> dict[str, Any]:
    """Format 1 kept early stopping in the progress record and a ReduceLROnPlateau state."""
    progress = dict(training["progress"])
    scheduler = training["scheduler"]
    policy = {"best_perplexity": progress.pop("best_perplexity", math.inf),
              "validations_without_improvement": progress.pop(
                  "validations_without_improvement", 0),
              "plateau_lr": training["optimizer"]["param_groups"][0]["lr"],
              "plateau_best": scheduler["best"], "plateau_bad": scheduler["num_bad_epochs"]}
    return {"progress": progress, "policy": policy, "optimizer": training["optimizer"],
            "grad_scaler": training.get("grad_scaler") or {},
            "rng_per_rank": training["rng_per_rank"]}
