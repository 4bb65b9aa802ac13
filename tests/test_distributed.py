"""torchrun with the gloo backend on CPU: two processes equal one with accumulation."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO, metrics, write_config
from nmt.checkpoint import load_checkpoint
from nmt.cli import main

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="this PyTorch build has no torch.distributed")


def config_for(sample_run, tmp_path, name, **training):
    settings = {"max_steps": 8, "validate_every": 4, "validation_bleu": False,
                "output_dir": str(tmp_path / name), "num_threads": 1, **training}
    return write_config(tmp_path / f"{name}.yaml", tmp_path,
                        data={"prepared_dir": str(sample_run / "prepared")},
                        model={"dropout": 0.0}, training=settings)


def torchrun_train(config, *options):
    """`nmt train` in two gloo processes on this CPU.

    On this shared 2-core machine a rank has now and then aborted inside PyTorch
    ("terminate called without an active exception", no Python traceback; cause not
    found). Then the same command runs once more: it resumes exactly from the last
    checkpoint, so the results compared below are those of one uninterrupted run.
    """
    for attempt in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
             "-m", "nmt", "-q", "train", str(config), *options],
            cwd=REPO, capture_output=True, text=True, timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "1"})
        if "terminate called without an active exception" not in result.stderr:
            break
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def pair_run(sample_run, tmp_path_factory):
    """8 steps in two processes, validating every 4."""
    tmp = tmp_path_factory.mktemp("pair")
    torchrun_train(config_for(sample_run, tmp, "pair"))
    return tmp / "pair"


def test_two_processes_equal_one_process_accumulating_two_batches(sample_run, tmp_path,
                                                                  pair_run):
    single = config_for(sample_run, tmp_path, "single", update_every=2)
    assert main(["-q", "train", str(single)]) == 0

    run = pair_run
    assert "weights identical in all 2 processes" in (run / "train.log").read_text()
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt", "config.yaml", "last.pt", "metrics.jsonl", "train.log"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [4, 8]  # written once, by rank 0 only
    single_records = [json.loads(line)
                      for line in (tmp_path / "single/metrics.jsonl").read_text().splitlines()]
    for a, b in zip(records, single_records):
        assert a["train_tokens"] == b["train_tokens"]
        assert a["dev_ppl"] == pytest.approx(b["dev_ppl"], rel=1e-4)
    weights_pair = load_checkpoint(run / "last.pt").model_state
    weights_single = load_checkpoint(tmp_path / "single/last.pt").model_state
    for name, tensor in weights_single.items():
        torch.testing.assert_close(weights_pair[name], tensor, rtol=1e-4, atol=1e-5)


def test_two_processes_stopped_mid_window_resume_to_the_same_losses(sample_run, tmp_path,
                                                                     pair_run):
    config = config_for(sample_run, tmp_path, "resumed", max_steps=6)
    torchrun_train(config)  # stops between two validations, with 2 steps in the loss window
    torchrun_train(config, "--max-steps", "8")
    assert metrics(tmp_path / "resumed") == metrics(pair_run)
    resumed = load_checkpoint(tmp_path / "resumed/last.pt").model_state
    for name, tensor in load_checkpoint(pair_run / "last.pt").model_state.items():
        assert torch.equal(resumed[name], tensor), name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


FAILING_RANK = """
import sys
import nmt.training
from nmt.cli import main

real_step = nmt.training.Trainer.train_step

def failing_step(self, *args):
    if self.dist.rank == 1 and self.progress.step == 3:
        raise RuntimeError("simulated crash in rank 1")
    return real_step(self, *args)

nmt.training.Trainer.train_step = failing_step
sys.exit(main(["train", sys.argv[1]]))
"""


def test_a_failing_rank_ends_the_run_with_a_message_not_a_hang(sample_run, tmp_path):
    config = config_for(sample_run, tmp_path, "failing", max_steps=50,
                        collective_timeout_minutes=1.0)
    port = str(free_port())
    processes = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
        processes.append(subprocess.Popen(
            [sys.executable, "-c", FAILING_RANK, str(config)], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    started = time.monotonic()
    outputs = [p.communicate(timeout=240) for p in processes]
    assert time.monotonic() - started < 200
    assert processes[1].returncode != 0 and "simulated crash" in outputs[1][1]
    assert processes[0].returncode == 1, outputs[0][1][-2000:]
    assert "lost contact with the other training processes" in outputs[0][1]
