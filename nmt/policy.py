"""What training decides from its measurements: the learning rate and when to stop.

`TrainingPolicy` sees each dev perplexity (on the `validate_every` grid only)
and answers three questions: which learning rate the next update uses, whether
this validation is the best so far (then `best.pt` is written), and whether
early stopping ends the run. Its whole state is plain numbers, saved in
`last.pt` and restored exactly, so a resumed run decides as the uninterrupted
one would have.

The learning rate of update n (counted from 1) is the schedule's rate times
the linear warm-up factor min(1, n / warmup_steps):

- plateau: follows torch's ``ReduceLROnPlateau`` (mode min, relative threshold
  1e-4, no cooldown) to the last bit: a validation that does not improve the
  plateau's best perplexity by more than 0.01% counts as bad, and after more
  than `lr_patience` bad ones in a row the rate is multiplied by
  `lr_decay_factor`. Its state is the only one that is not a function of n.
- step: `lr_decay_factor` once from `decay_start_epoch` on and once more every
  `decay_every_epochs` after it.
- inverse_sqrt: learning_rate * sqrt(warmup_steps / n) after warm-up (1 / sqrt(n)
  without warm-up).
- cosine: from learning_rate after warm-up down to `min_learning_rate` at
  `total_steps` (or `max_steps`) along half a cosine.

No schedule decays below `min_learning_rate`.
"""

from __future__ import annotations

import math
from typing import Any

from nmt.config import TrainingConfig

PLATEAU_THRESHOLD = 1e-4  # relative improvement the plateau rule needs (torch's default)
PLATEAU_EPS = 1e-8  # smaller decays are not applied (torch's default)


class TrainingPolicy:
    """The learning-rate schedule and early stopping of one run."""

    def __init__(self, config: TrainingConfig):
        self.config = config  # read live: early_stopping_patience may change on resume
        self.best_perplexity = math.inf  # lowest dev perplexity so far (best.pt's)
        self.validations_without_improvement = 0  # since the best; for early stopping
        self.plateau_lr = config.learning_rate  # the rate after plateau decays
        self.plateau_best = math.inf
        self.plateau_bad = 0  # validations in a row without a plateau improvement

    def learning_rate(self, step: int, epoch: int) -> float:
        """The rate for update number `step` (counted from 1), taken in `epoch`."""
        cfg = self.config
        peak, floor, warmup = cfg.learning_rate, cfg.min_learning_rate, cfg.warmup_steps
        if cfg.lr_schedule == "plateau":
            rate = self.plateau_lr  # the decay itself stops at the floor
        elif cfg.lr_schedule == "step":
            decays = (0 if epoch < cfg.decay_start_epoch
                      else 1 + (epoch - cfg.decay_start_epoch) // cfg.decay_every_epochs)
            rate = max(peak * cfg.lr_decay_factor ** decays, floor)
        elif cfg.lr_schedule == "inverse_sqrt":
            rate = max(peak * math.sqrt(max(warmup, 1) / max(step, warmup, 1)), floor)
        else:  # cosine
            total = cfg.total_steps or cfg.max_steps
            done = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
            rate = floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * done))
        return rate * step / warmup if step < warmup else rate

    def after_validation(self, perplexity: float) -> bool:
        """Take a dev perplexity from the validation grid; True if it is the best so far."""
        improved = perplexity < self.best_perplexity
        if improved:
            self.best_perplexity = perplexity
            self.validations_without_improvement = 0
        else:
            self.validations_without_improvement += 1
        if self.config.lr_schedule == "plateau":
            self._plateau_decay(perplexity)
        return improved

    def _plateau_decay(self, perplexity: float) -> None:
        if perplexity < self.plateau_best * (1.0 - PLATEAU_THRESHOLD):
            self.plateau_best, self.plateau_bad = perplexity, 0
        else:
            self.plateau_bad += 1
        if self.plateau_bad > self.config.lr_patience:
            self.plateau_bad = 0
            decayed = max(self.plateau_lr * self.config.lr_decay_factor,
                          self.config.min_learning_rate)
            if self.plateau_lr - decayed > PLATEAU_EPS:
                self.plateau_lr = decayed

    def early_stop(self) -> str | None:
        """Why early stopping ends the run now, if it does."""
        patience = self.config.early_stopping_patience
        if patience and self.validations_without_improvement >= patience:
            return f"early stopping: no dev improvement in {patience} validations"
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"best_perplexity": self.best_perplexity,
                "validations_without_improvement": self.validations_without_improvement,
                "plateau_lr": self.plateau_lr, "plateau_best": self.plateau_best,
                "plateau_bad": self.plateau_bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_perplexity = state["best_perplexity"]
        self.validations_without_improvement = state["validations_without_improvement"]
        self.plateau_lr = state["plateau_lr"]
        self.plateau_best = state["plateau_best"]
        self.plateau_bad = state["plateau_bad"]
