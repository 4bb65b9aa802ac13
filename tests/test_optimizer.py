"""Training's multi-tensor (foreach) Adam step updates the weights as PyTorch's reference Adam does."""

from __future__ import annotations

import pytest
import torch

from nmt.config import load_config
from nmt.data import make_batch
from nmt.training import Trainer


def test_foreach_adam_steps_match_the_reference_adam_on_a_fixed_batch(sample_run, tmp_path):
    config = load_config(sample_run / "config.yaml")
    config.training.output_dir = str(tmp_path / "run")
    results = []
    for reference in (False, True):
        trainer = Trainer(config, overwrite=True)
        assert trainer.optimizer.defaults["foreach"]
        if reference:  # the per-parameter implementation, PyTorch's default on the CPU
            trainer.optimizer = torch.optim.Adam(trainer.model.parameters(),
                                                 config.training.learning_rate,
                                                 foreach=False, fused=False)
        batch = make_batch(trainer.train_data, trainer.epoch_batches(1)[0])
        losses = [trainer.train_step([batch], batch.num_tokens) for _ in range(5)]
        results.append((losses, [p.detach().clone() for p in trainer.model.parameters()]))
    (foreach_losses, foreach_weights), (losses, weights) = results
    assert losses[-1] < losses[0]  # the steps do learn the batch
    assert foreach_losses == pytest.approx(losses, rel=1e-5)
    for foreach, expected in zip(foreach_weights, weights):
        torch.testing.assert_close(foreach, expected, rtol=1e-5, atol=1e-6)
