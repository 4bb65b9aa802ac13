"""Shared fixtures: tiny models and tiny corpora, all built in memory or tmp_path."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
import torch
import yaml

from nmt.cli import main
from nmt.config import ModelConfig
from nmt.model import Seq2Seq
from nmt.vocabulary import PAD

torch.set_num_threads(1)  # small tensors: threads only add noise and contention


def tiny_config(**overrides) -> ModelConfig:
    sizes = dict(embedding_size=16, encoder_hidden_size=12, encoder_layers=2,
                 decoder_hidden_size=20, decoder_layers=2, attention_size=14,
                 output_size=16, dropout=0.0)
    sizes.update(overrides)
    return ModelConfig(**sizes)


def tiny_model(seed: int = 0, src_vocab: int = 30, tgt_vocab: int = 40, **overrides) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(tiny_config(**overrides), src_vocab, tgt_vocab).eval()


def random_batch(seed: int, lengths: list[int], vocab: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of random real tokens (ids >= 4) with the given lengths."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(4, vocab, (len(lengths), max(lengths)), generator=generator)
    for row, length in enumerate(lengths):
        src[row, length:] = PAD
    return src, torch.tensor(lengths)


@pytest.fixture
def model() -> Seq2Seq:
    return tiny_model()


REPO = Path(__file__).resolve().parent.parent


def one_line_error(capsys) -> str:
    """The error the CLI printed: one whole line, the last on stderr, and no traceback.

    Log lines (such as the precision chosen) may come before it.
    """
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("nmt ") and ": error: " in last, err
    return last


def write_config(path: Path, tmp: Path, **sections) -> Path:
    """A config for the shipped sample corpus with a tiny model, written under `tmp`."""
    config = {
        "data": {"src_lang": "en", "tgt_lang": "de", "train": str(REPO / "data/train"),
                 "dev": str(REPO / "data/dev"), "test": str(REPO / "data/test"),
                 "prepared_dir": str(tmp / "prepared")},
        "sentencepiece": {"vocab_size": 300},
        "model": {"embedding_size": 32, "encoder_hidden_size": 32, "encoder_layers": 1,
                  "decoder_hidden_size": 48, "decoder_layers": 1, "attention_size": 32,
                  "output_size": 32, "dropout": 0.0},
        "training": {"output_dir": str(tmp / "run"), "batch_tokens": 800,
                     "learning_rate": 0.005, "max_steps": 150, "validate_every": 75,
                     "log_every": 10, "num_threads": 1,
                     # the same model on every CPU (auto would pick bf16 on some)
                     "precision": "fp32"},
        "decoding": {"beam_size": 3, "batch_size": 16},
    }
    for section, values in sections.items():
        config[section].update(values)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


TIMING_KEYS = {"train_seconds", "train_tok_per_s", "validation_seconds", "wall_seconds"}


def run_config(sample_run, tmp_path, name: str, **training):
    """A config training on the session's prepared sample, with dropout (so RNG state matters)."""
    settings = {"max_steps": 60, "validate_every": 10, "validation_bleu": False,
                "output_dir": str(tmp_path / name), **training}
    return write_config(tmp_path / f"{name}.yaml", tmp_path,
                        data={"prepared_dir": str(sample_run / "prepared")},
                        model={"dropout": 0.3}, training=settings)


def metrics(run_dir):
    """The validation records, without timings and without end-of-run evaluations."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records
            if not r.get("end_of_run")]


def assert_equal_state(a, b, where="state"):
    """Nested dicts and lists of numbers and tensors, equal to the last bit."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            if key not in TIMING_KEYS:
                assert_equal_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    """Preprocess the shipped sample and train a tiny model on it, once per session.

    Returns the directory holding config.yaml, prepared/ and run/ (best.pt, ...).
    """
    tmp = tmp_path_factory.mktemp("sample_run")
    config = write_config(tmp / "config.yaml", tmp)
    assert main(["-q", "preprocess", str(config)]) == 0
    assert main(["-q", "train", str(config)]) == 0
    return tmp


@contextlib.contextmanager
def serving(*args: str, startup_timeout: float = 180) -> Iterator[tuple[str, subprocess.Popen]]:
    """`nmt serve ARGS --port 0` in a subprocess on 127.0.0.1: yields its URL and process.

    Its stderr is collected in `process.log` (a list of lines); the process is
    stopped with SIGTERM at the end if it still runs.
    """
    process = subprocess.Popen([sys.executable, "-m", "nmt", "serve", "--port", "0", *args],
                               cwd=REPO, stderr=subprocess.PIPE, text=True)
    process.log = []
    started: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stderr:
            process.log.append(line)
            if match := re.search(r"serving on (http://\S+)", line):
                started.put(match.group(1))
        started.put(None)  # the process ended

    threading.Thread(target=read, daemon=True).start()
    try:
        try:
            url = started.get(timeout=startup_timeout)
        except queue.Empty:
            url = None
        assert url, "nmt serve did not start:\n" + "".join(process.log)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def live_server(sample_run) -> Iterator[str]:
    """A real server on 127.0.0.1 with the sample model as "sample", for the whole session."""
    with serving("--model", f"sample={sample_run / 'run/best.pt'}", "--device", "cpu") as (url, _):
        yield url
