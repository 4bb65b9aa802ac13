"""Training loop behaviour: budgets and what the logs say."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

import nmt.training
from conftest import assert_equal_state, run_config
from nmt.checkpoint import load_checkpoint
from nmt.cli import main
from nmt.config import load_config
from nmt.errors import NmtError
from nmt.training import Trainer, TrainingInterrupted


def test_zero_means_no_limit_for_every_budget(sample_run, tmp_path):
    config = run_config(sample_run, tmp_path, "zeros", max_steps=12, max_epochs=0,
                        max_minutes=0)
    assert main(["-q", "train", str(config)]) == 0
    assert load_checkpoint(tmp_path / "zeros/last.pt").training_state.progress.step == 12


def test_a_run_without_any_limit_is_warned_about_and_stops_on_sigterm(sample_run, tmp_path,
                                                                      monkeypatch, caplog):
    real_nll, calls = nmt.training.token_nll, []

    def sigterm_on_the_fifth_batch(logits, targets, label_smoothing=0.0):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_nll(logits, targets, label_smoothing)

    monkeypatch.setattr(nmt.training, "token_nll", sigterm_on_the_fifth_batch)
    config = load_config(run_config(sample_run, tmp_path, "endless", max_steps=0,
                                    max_epochs=0, max_minutes=0, early_stopping_patience=0))
    with pytest.raises(TrainingInterrupted):
        Trainer(config).run()
    warnings = [r.message for r in caplog.records if r.levelname == "WARNING"]
    assert any("no limit" in message and "max_steps" in message for message in warnings)
    assert load_checkpoint(tmp_path / "endless/last.pt").training_state.progress.step >= 5


def test_a_label_smoothed_train_loss_says_so(sample_run, tmp_path):
    config = run_config(sample_run, tmp_path, "smoothed", max_steps=10, label_smoothing=0.1)
    assert main(["-q", "train", str(config)]) == 0
    (record,) = [json.loads(line) for line in
                 (tmp_path / "smoothed/metrics.jsonl").read_text().splitlines()]
    assert record["label_smoothing"] == 0.1
    log_text = (tmp_path / "smoothed/train.log").read_text()
    assert "train loss (label-smoothed 0.1)" in log_text


def test_keep_checkpoints_keeps_the_newest_periodic_checkpoints(sample_run, tmp_path,
                                                                monkeypatch):
    config = run_config(sample_run, tmp_path, "keep", max_steps=40, keep_checkpoints=2)
    assert main(["-q", "train", str(config)]) == 0
    run = tmp_path / "keep"
    assert sorted(p.name for p in run.glob("ckpt-*.pt")) == ["ckpt-30.pt", "ckpt-40.pt"]
    newest = load_checkpoint(run / "ckpt-40.pt")
    assert newest.training_state is None  # translation only, like best.pt
    assert_equal_state(newest.model_state, load_checkpoint(run / "last.pt").model_state)

    real_save = nmt.training.save_checkpoint

    def periodic_write_fails(path, checkpoint):
        if path.name.startswith("ckpt-"):
            raise NmtError(f"{path}: cannot write checkpoint (No space left on device)")
        real_save(path, checkpoint)

    monkeypatch.setattr(nmt.training, "save_checkpoint", periodic_write_fails)
    keep_one = run_config(sample_run, tmp_path, "keep", max_steps=60, keep_checkpoints=1)
    assert main(["-q", "train", str(keep_one)]) == 1
    # Nothing was removed for the checkpoint that did not reach the disk.
    assert sorted(p.name for p in run.glob("ckpt-*.pt")) == ["ckpt-30.pt", "ckpt-40.pt"]
    monkeypatch.setattr(nmt.training, "save_checkpoint", real_save)
    assert main(["-q", "train", str(keep_one)]) == 0
    assert sorted(p.name for p in run.glob("ckpt-*.pt")) == ["ckpt-60.pt"]


def test_an_early_stopped_run_trained_again_stays_stopped(sample_run, tmp_path, monkeypatch,
                                                          caplog):
    monkeypatch.setattr(nmt.training, "dev_perplexity", lambda *args: 10.0)  # never improves
    config = run_config(sample_run, tmp_path, "early", early_stopping_patience=2)
    assert main(["-q", "train", str(config)]) == 0
    last = tmp_path / "early/last.pt"
    assert load_checkpoint(last).training_state.progress.step == 30
    before = last.read_bytes()
    assert main(["-q", "train", str(config)]) == 0
    assert any("nothing to do: early stopping" in r.message for r in caplog.records)
    assert last.read_bytes() == before


def test_fused_adam_updates_as_the_default_one():
    """The fused kernel (single-process runs) is a speed change only."""
    torch.manual_seed(0)
    weights = [torch.randn(300, 200), torch.randn(200)]
    gradients = [[torch.randn_like(w) for w in weights] for _ in range(5)]
    results = []
    for fused in (True, False):
        parameters = [torch.nn.Parameter(w.clone()) for w in weights]
        optimizer = nmt.training.adam(parameters, 1e-3, fused=fused)
        cpu_kernel = torch.__version__ >= "2.4"  # PyTorch's fused CPU Adam came in 2.4
        assert optimizer.param_groups[0]["fused"] is (fused and cpu_kernel)
        for step in gradients:
            for parameter, gradient in zip(parameters, step):
                parameter.grad = gradient.clone()
            optimizer.step()
        results.append(parameters)
    for fused, default in zip(*results):
        torch.testing.assert_close(fused, default, rtol=1e-6, atol=1e-7)
