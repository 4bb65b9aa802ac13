"""The training policy: learning-rate decay and early stopping from dev perplexities."""

from __future__ import annotations

import copy

import pytest
import torch

from nmt.config import TrainingConfig
from nmt.policy import TrainingPolicy

# Improves, stalls (one improvement below the 0.01% threshold), improves, stalls for long.
PERPLEXITIES = [50.0, 30.0, 30.0, 29.999, 31.0, 20.0, 21.0, 22.0, 20.0, 23.0, 24.0, 25.0,
                26.0, 27.0, 28.0, 29.0, 30.0, float("nan"), 31.0]


def test_plateau_decay_gives_exactly_the_rates_of_torchs_reduce_lr_on_plateau():
    config = TrainingConfig(learning_rate=3e-3, lr_decay_factor=0.3, lr_patience=1,
                            min_learning_rate=1e-4)
    policy = TrainingPolicy(config)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=config.learning_rate)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_decay_factor, patience=config.lr_patience,
        min_lr=config.min_learning_rate)
    rates = []
    for step, perplexity in enumerate(PERPLEXITIES, start=1):
        policy.after_validation(perplexity)
        reference.step(perplexity)
        rates.append(policy.learning_rate(step * 100 + 1, 1))
        assert rates[-1] == optimizer.param_groups[0]["lr"], step
    assert len(set(rates)) > 3 and rates[-1] == config.min_learning_rate


def test_a_restored_policy_decides_exactly_as_the_original():
    config = TrainingConfig(lr_patience=0, early_stopping_patience=4)
    original = TrainingPolicy(config)
    for perplexity in PERPLEXITIES[:7]:
        original.after_validation(perplexity)
    restored = TrainingPolicy(config)
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    for perplexity in PERPLEXITIES[7:]:
        assert restored.after_validation(perplexity) == original.after_validation(perplexity)
        assert restored.learning_rate(1000, 3) == original.learning_rate(1000, 3)
        assert restored.early_stop() == original.early_stop()
    assert restored.state_dict() == original.state_dict()


def test_the_learning_rate_decays_after_more_than_lr_patience_bad_validations():
    policy = TrainingPolicy(TrainingConfig(learning_rate=1e-3, lr_decay_factor=0.5,
                                           lr_patience=2, min_learning_rate=3e-4))
    rates = []
    for perplexity in [10.0, 9.0, 9.5, 9.4, 9.0, 9.1, 8.0, 8.5, 8.5, 8.5, 8.5, 8.5, 8.5]:
        policy.after_validation(perplexity)
        rates.append(policy.learning_rate(1, 1))
    # 9.5, 9.4, 9.0 (equal is no improvement): the third bad validation in a row
    # decays and the count starts again; 8.0 improves; the third 8.5 decays to the
    # floor, and there the rate stays.
    assert rates == [1e-3] * 4 + [5e-4] * 5 + [3e-4] * 4


def test_early_stopping_fires_after_patience_validations_without_a_new_best():
    policy = TrainingPolicy(TrainingConfig(early_stopping_patience=3))
    verdicts = []
    for perplexity in [10.0, 9.0, 9.5, 9.0, 8.9, 9.2, 9.3, 8.9]:
        improved = policy.after_validation(perplexity)
        verdicts.append((improved, policy.early_stop() is not None))
    assert verdicts == [(True, False), (True, False), (False, False), (False, False),
                        (True, False), (False, False), (False, False), (False, True)]
    assert "no dev improvement in 3 validations" in policy.early_stop()


def test_early_stopping_patience_0_never_stops():
    policy = TrainingPolicy(TrainingConfig(early_stopping_patience=0))
    for perplexity in [10.0] + [11.0] * 50:
        policy.after_validation(perplexity)
    assert policy.early_stop() is None


def rates(steps, epoch=1, **settings) -> list[float]:
    policy = TrainingPolicy(TrainingConfig(**settings))
    return [policy.learning_rate(step, epoch) for step in steps]


def test_linear_warmup_works_with_every_schedule():
    for schedule in ("plateau", "step", "inverse_sqrt", "cosine"):
        assert rates([1, 2, 3, 4], lr_schedule=schedule, learning_rate=1.0, warmup_steps=4,
                     max_steps=100) == pytest.approx([0.25, 0.5, 0.75, 1.0]), schedule


def test_step_decay_starts_at_decay_start_epoch_and_stops_at_the_floor():
    policy = TrainingPolicy(TrainingConfig(lr_schedule="step", learning_rate=1.0,
                                           lr_decay_factor=0.5, decay_start_epoch=3,
                                           decay_every_epochs=2, min_learning_rate=0.1))
    assert [policy.learning_rate(1, epoch) for epoch in range(1, 11)] == [
        1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.1, 0.1]


def test_inverse_sqrt_decays_from_the_end_of_warm_up():
    assert rates([4, 16, 64, 400], lr_schedule="inverse_sqrt", learning_rate=1.0,
                 warmup_steps=4, min_learning_rate=0.0) == [1.0, 0.5, 0.25, 0.1]
    assert rates([1, 4, 100], lr_schedule="inverse_sqrt", learning_rate=1.0,
                 min_learning_rate=0.0) == [1.0, 0.5, 0.1]


def test_cosine_falls_from_the_peak_to_the_floor_over_total_steps():
    got = rates([2, 7, 12, 50], lr_schedule="cosine", learning_rate=1.0,
                min_learning_rate=0.1, warmup_steps=2, total_steps=12)
    assert got == pytest.approx([1.0, 0.55, 0.1, 0.1])
    # Without total_steps, max_steps is the length.
    assert rates([50], lr_schedule="cosine", learning_rate=1.0, min_learning_rate=0.0,
                 max_steps=100) == pytest.approx([0.5])


def test_only_the_plateau_schedule_decays_on_a_plateau():
    for schedule, expected in (("plateau", 0.25), ("step", 1.0)):
        policy = TrainingPolicy(TrainingConfig(lr_schedule=schedule, learning_rate=1.0,
                                               lr_decay_factor=0.25, lr_patience=0))
        for perplexity in (10.0, 11.0):
            policy.after_validation(perplexity)
        assert policy.learning_rate(10, 1) == expected, schedule
