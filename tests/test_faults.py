"""Fault injection: killed, interrupted, diverging and disk-full training runs."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

import nmt.checkpoint
import nmt.training
from conftest import REPO, assert_equal_state, metrics, run_config
from nmt.checkpoint import load_checkpoint
from nmt.cli import main
from nmt.config import load_config
from nmt.errors import NmtError
from nmt.evaluation import dev_perplexity
from nmt.training import Trainer

def assert_same_run(a, b):
    """Same validations, and last.pt the same to the last bit: weights, optimiser
    (learning rate included), policy (plateau and early-stopping state), progress."""
    assert metrics(a) == metrics(b)
    last_a, last_b = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert_equal_state(last_a.model_state, last_b.model_state, "weights")
    assert_equal_state(last_a.training_state.to_dict(), last_b.training_state.to_dict(),
                       "training")


@pytest.fixture(scope="module")
def uninterrupted(sample_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    assert main(["-q", "train", str(run_config(sample_run, tmp, "run"))]) == 0
    return tmp / "run"


def start_training(config):
    return subprocess.Popen([sys.executable, "-m", "nmt", "-q", "train", str(config)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_records(run_dir, count: int, process, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    path = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    raise AssertionError("training made no progress")


def test_killed_run_resumes_to_the_same_losses_and_weights(sample_run, tmp_path, uninterrupted):
    config = run_config(sample_run, tmp_path, "killed")
    process = start_training(config)
    wait_for_records(tmp_path / "killed", 2, process)
    process.kill()  # SIGKILL: no chance to save anything
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert load_checkpoint(tmp_path / "killed/last.pt").training_state.progress.step < 60
    assert main(["-q", "train", str(config)]) == 0
    assert_same_run(uninterrupted, tmp_path / "killed")


def test_sigterm_saves_a_checkpoint_and_the_run_resumes_exactly(sample_run, tmp_path,
                                                                 uninterrupted):
    config = run_config(sample_run, tmp_path, "stopped")
    process = start_training(config)
    wait_for_records(tmp_path / "stopped", 1, process)
    time.sleep(0.05)  # stop between two validations
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "interrupted by SIGTERM" in stderr and "resume" in stderr
    saved = load_checkpoint(tmp_path / "stopped/last.pt").training_state.progress.step
    assert 10 <= saved < 60
    assert main(["-q", "train", str(config)]) == 0
    assert_same_run(uninterrupted, tmp_path / "stopped")


def test_a_finished_run_continues_with_a_larger_budget(sample_run, tmp_path, uninterrupted):
    short = run_config(sample_run, tmp_path, "extended", max_steps=30)
    assert main(["-q", "train", str(short)]) == 0
    assert main(["-q", "train", str(short), "--max-steps", "60"]) == 0
    assert_same_run(uninterrupted, tmp_path / "extended")


def test_a_format_1_checkpoint_resumes_to_the_same_run(sample_run, tmp_path, uninterrupted):
    config = run_config(sample_run, tmp_path, "format1", max_steps=30)
    assert main(["-q", "train", str(config)]) == 0
    # Rewrite last.pt as format 1 held it: early stopping in the progress record and
    # the learning-rate decay as a ReduceLROnPlateau state.
    path = tmp_path / "format1/last.pt"
    payload = torch.load(path, weights_only=True)
    training = payload["training"]
    policy = training.pop("policy")
    per_rank = training.pop("per_rank")
    training["rng_per_rank"] = [{"torch": r["torch_rng"], "cuda": r["cuda_rng"]}
                                for r in per_rank]
    training["progress"].update(
        best_perplexity=policy["best_perplexity"],
        validations_without_improvement=policy["validations_without_improvement"],
        window_loss=per_rank[0]["window_loss"])
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=2)
    training["scheduler"] = {**scheduler.state_dict(), "best": policy["plateau_best"],
                             "num_bad_epochs": policy["plateau_bad"]}
    torch.save({**payload, "format_version": 1}, path)
    assert main(["-q", "train", str(config), "--max-steps", "60"]) == 0
    assert_same_run(uninterrupted, tmp_path / "format1")


def test_a_run_stopped_off_the_validation_grid_resumes_to_the_same_run(sample_run, tmp_path,
                                                                      uninterrupted):
    config = run_config(sample_run, tmp_path, "offgrid", max_steps=25)
    assert main(["-q", "train", str(config)]) == 0
    assert main(["-q", "train", str(config), "--max-steps", "60"]) == 0
    assert_same_run(uninterrupted, tmp_path / "offgrid")
    records = [json.loads(line)
               for line in (tmp_path / "offgrid/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("end_of_run")] == [25]  # logged, nothing more


# Each schedule with its stop: the sample's epochs are 72 updates, so the step
# schedule's run crosses into its decayed epoch 2 before the stop.
SCHEDULES = {
    "plateau": ({"warmup_steps": 15, "lr_patience": 0}, 25, 40),
    "step": ({"lr_schedule": "step", "decay_start_epoch": 2, "lr_decay_factor": 0.5}, 75, 80),
    "inverse_sqrt": ({"lr_schedule": "inverse_sqrt", "warmup_steps": 15}, 25, 40),
    "cosine": ({"lr_schedule": "cosine", "warmup_steps": 5, "total_steps": 40}, 25, 40),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_lr_schedule_resumes_exactly(sample_run, tmp_path, name):
    settings, stop, end = SCHEDULES[name]
    whole = run_config(sample_run, tmp_path, "whole", max_steps=end, **settings)
    assert main(["-q", "train", str(whole)]) == 0
    config = run_config(sample_run, tmp_path, "resumed", max_steps=stop, **settings)
    assert main(["-q", "train", str(config)]) == 0
    assert main(["-q", "train", str(config), "--max-steps", str(end)]) == 0
    assert_same_run(tmp_path / "whole", tmp_path / "resumed")
    lrs = [r["lr"] for r in metrics(tmp_path / "whole")]
    assert len(set(lrs)) > 1  # the schedule changed the rate during the test


class FakeClock:
    """Two seconds pass each time training looks at the clock."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 2.0
        return self.now


def test_a_run_stopped_by_max_minutes_resumes_to_the_same_run(sample_run, tmp_path,
                                                              uninterrupted, caplog):
    config = load_config(run_config(sample_run, tmp_path, "minutes", max_minutes=0.5))
    Trainer(config, clock=FakeClock()).run()
    assert any("stopped: max_minutes (0.5) reached" in r.message for r in caplog.records)
    stopped_at = load_checkpoint(tmp_path / "minutes/last.pt").training_state.progress.step
    assert 10 < stopped_at < 60 and stopped_at % 10  # off the validation grid
    config.training.max_minutes = 0
    Trainer(config).run()
    assert_same_run(uninterrupted, tmp_path / "minutes")


def test_a_different_config_is_refused_not_overwritten(sample_run, tmp_path, capsys):
    config = run_config(sample_run, tmp_path, "run", max_steps=10)
    assert main(["-q", "train", str(config)]) == 0
    before = (tmp_path / "run/last.pt").read_bytes()
    changed = run_config(sample_run, tmp_path, "run", max_steps=10, learning_rate=0.01)
    assert main(["-q", "train", str(changed)]) == 1
    err = capsys.readouterr().err
    assert "training.learning_rate" in err and "--overwrite" in err
    assert (tmp_path / "run/last.pt").read_bytes() == before
    assert main(["-q", "train", str(changed), "--overwrite"]) == 0
    assert len(metrics(tmp_path / "run")) == 1


def test_non_finite_losses_skip_the_update_then_stop_the_run(sample_run, tmp_path,
                                                              monkeypatch, caplog):
    real_nll = nmt.training.token_nll
    calls = {"n": 0}

    def sometimes_nan(logits, targets, label_smoothing=0.0):
        loss = real_nll(logits, targets, label_smoothing)
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] in bad_calls:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(nmt.training, "token_nll", sometimes_nan)
    bad_calls = {3, 4}
    config = load_config(run_config(sample_run, tmp_path, "nan", max_steps=10))
    Trainer(config).run()
    assert sum("update skipped" in r.message for r in caplog.records) == 2
    state = load_checkpoint(tmp_path / "nan/last.pt")
    assert state.training_state.progress.step == 10
    assert all(torch.isfinite(t).all() for t in state.model_state.values())

    bad_calls = set(range(1, 1000))
    config = load_config(run_config(sample_run, tmp_path, "diverged", max_steps=10))
    with pytest.raises(NmtError, match="training diverged: 5 non-finite losses in a row"):
        Trainer(config).run()


def test_non_finite_weights_never_reach_a_checkpoint(sample_run, tmp_path):
    config = load_config(run_config(sample_run, tmp_path, "weights", max_steps=10))
    trainer = Trainer(config)
    trainer.run()
    before = (tmp_path / "weights/last.pt").read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters())[0] = float("inf")
    with pytest.raises(NmtError, match="non-finite weights"):
        trainer._save()
    assert (tmp_path / "weights/last.pt").read_bytes() == before


def test_a_crash_between_the_two_checkpoints_leaves_a_consistent_pair(sample_run, tmp_path,
                                                                      monkeypatch):
    config = load_config(run_config(sample_run, tmp_path, "pair", max_steps=20))
    trainer = Trainer(config)
    real_save, saves_at_20 = nmt.training.save_checkpoint, []

    def crash_on_the_second_write_at_step_20(path, checkpoint):
        if trainer.progress.step == 20:
            saves_at_20.append(path.name)
            if len(saves_at_20) == 2:
                raise NmtError("simulated crash")
        real_save(path, checkpoint)

    monkeypatch.setattr(nmt.training, "save_checkpoint", crash_on_the_second_write_at_step_20)
    with pytest.raises(NmtError, match="simulated crash"):
        trainer.run()
    assert len(saves_at_20) == 2  # step 20 improved: best.pt and last.pt were due
    # Whatever last.pt says the best perplexity is, best.pt on disk is at least that good.
    claimed = load_checkpoint(tmp_path / "pair/last.pt").training_state.policy["best_perplexity"]
    best = load_checkpoint(tmp_path / "pair/best.pt").build_model()
    assert dev_perplexity(best, trainer.dev_data, trainer.device, config) <= claimed


def test_a_full_disk_is_a_clear_error_and_the_last_checkpoint_survives(sample_run, tmp_path,
                                                                        monkeypatch, capsys):
    config = run_config(sample_run, tmp_path, "full", max_steps=10)
    assert main(["-q", "train", str(config)]) == 0
    before = (tmp_path / "full/last.pt").read_bytes()

    def disk_full(obj, stream):
        stream.write(b"partial checkpoint bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nmt.checkpoint.torch, "save", disk_full)
    assert main(["-q", "train", str(config), "--max-steps", "20"]) == 1
    err = capsys.readouterr().err.strip()
    assert "cannot write checkpoint (No space left on device)" in err and "\n" not in err
    assert (tmp_path / "full/last.pt").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "full").iterdir() if p.name.startswith(".")) == []
