"""The training policy: learning-rate decay and early stopping from dev perplexities."""

from __future__ import annotations

import copy

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
