"""OpenNMT-py 3.5.1, the peer of `tools/benchmark.py --peer-opennmt VENV`.

The protocol of the peer measurements (shared/bench/peers-m30k-cpu.md): one
SentencePiece unigram model (8k, joint over the training sides) encodes every
split; OpenNMT-py trains with the config in peer_opennmt.yaml (the same
architecture as configs/multi30k_de-en.yaml) for a number of steps from a cold
start, and translates test_2016_flickr greedy and with beam 5 (its defaults:
batches of 30 sentences, average-length normalisation), timed as whole processes.
VENV is a virtual environment with OpenNMT-py installed (its bin/ holds
onmt_build_vocab, onmt_train and onmt_translate).
"""

from __future__ import annotations

import datetime
import gzip
import os
import re
import subprocess
import time
from pathlib import Path

import sentencepiece as spm

CONFIG_TEMPLATE = Path(__file__).with_name("peer_opennmt.yaml")
SPLITS = ("train", "val", "test_2016_flickr")


def prepare_data(data: Path, work: Path, src: str, tgt: str) -> Path:
    """Raw and SentencePiece-encoded splits in work/data (as shared/bench's prep_data.py)."""
    out = work / "data"
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        for lang in (src, tgt):
            with gzip.open(data / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
                lines = [line.rstrip("\n") for line in f]
            (out / f"raw.{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=f"{out}/raw.train.{src},{out}/raw.train.{tgt}", model_prefix=str(out / "spm8k"),
        vocab_size=8000, model_type="unigram", character_coverage=1.0, num_threads=2,
        minloglevel=1)
    processor = spm.SentencePieceProcessor(model_file=str(out / "spm8k.model"))
    for split in SPLITS:
        for lang in (src, tgt):
            lines = (out / f"raw.{split}.{lang}").read_text(encoding="utf-8").splitlines()
            encoded = [" ".join(processor.encode(line, out_type=str)) for line in lines]
            (out / f"{split}.sp.{lang}").write_text("\n".join(encoded) + "\n", encoding="utf-8")
    return out


def _environment(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "PYTHONWARNINGS": "ignore"}


def _run(command: list[str], log: Path, threads: int, **env: str) -> float:
    """Run a peer command (output to `log`); returns its wall seconds."""
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as stream:
        done = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT,
                              env={**_environment(threads), **env})
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - started


def _timestamp(line: str) -> float:
    """Seconds since the epoch of an OpenNMT-py log line ('[2026-11-22 12:00:00,123 INFO] ...')."""
    stamp = re.match(r"\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})", line).group(1)
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def read_training_log(text: str, steps: int) -> dict:
    """Target tokens and times from an OpenNMT-py training log (shared/bench's collect.py).

    Its own count of target tokens is the end-of-run `Average bsz` (non-padding
    target pieces + EOS per step) times the steps; the last update ended at the
    validation line's time minus the validation's duration.
    """
    lines = text.splitlines()
    loop_start = last_update = tokens_per_step = None
    for i, line in enumerate(lines):
        if "Start training loop" in line:
            loop_start = _timestamp(line)
        elif "valid stats calculation" in line:
            took = float(re.search(r"took: ([\d.]+)", lines[i + 1]).group(1))
            last_update = _timestamp(line) - took
        elif "Average bsz" in line:
            tokens_per_step = float(line.split("bsz:")[1].split("/")[1])
    if None in (loop_start, last_update, tokens_per_step):
        raise RuntimeError("OpenNMT-py's training log lacks the loop start, the validation "
                           "or the average batch size")
    tokens = tokens_per_step * steps
    return {"steps": steps, "target_tokens": round(tokens), "loop_start": loop_start,
            "last_update": last_update, "loop_seconds": last_update - loop_start,
            "target_tokens_per_s": tokens / (last_update - loop_start)}


def train(venv: Path, work: Path, steps: int, threads: int) -> dict:
    """Build the vocabularies, then train `steps` steps from a cold start (timed)."""
    (work / "onmt").mkdir(parents=True, exist_ok=True)
    config = work / "onmt/train.yaml"
    config.write_text(CONFIG_TEMPLATE.read_text(encoding="utf-8")
                      .replace("$PEERS", str(work)).replace("TRAIN_STEPS", str(steps)),
                      encoding="utf-8")
    _run([str(venv / "bin/onmt_build_vocab"), "-config", str(config), "-n_sample", "-1"],
         work / "onmt/build_vocab.out", threads)
    launched = time.time()
    process_seconds = _run([str(venv / "bin/onmt_train"), "-config", str(config)],
                           work / "onmt/train.out", threads)
    result = read_training_log((work / "onmt/train.log").read_text(encoding="utf-8"), steps)
    result["launch_to_last_update_seconds"] = result.pop("last_update") - launched
    result["startup_seconds"] = result.pop("loop_start") - launched
    result["process_seconds"] = process_seconds
    result["checkpoint"] = str(work / f"onmt/model_step_{steps}.pt")
    return result


def translate(venv: Path, work: Path, checkpoint: Path, beam: int, threads: int,
              src: str, tgt: str) -> tuple[dict, list[str], list[str]]:
    """Translate test_2016_flickr as a whole process; returns the timing, the detokenised
    hypotheses and the raw references."""
    data = work / "data"
    output = work / f"onmt/test.beam{beam}.sp"
    # OpenNMT-py 3.5.1 checkpoints hold pickled objects that torch >= 2.6 refuses to load
    # by default; this restores the old default for this (own, trusted) file.
    seconds = _run([str(venv / "bin/onmt_translate"), "-model", str(checkpoint),
                    "-src", str(data / f"test_2016_flickr.sp.{src}"), "-output", str(output),
                    "-beam_size", str(beam)],
                   work / f"onmt/translate.beam{beam}.out", threads,
                   TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    processor = spm.SentencePieceProcessor(model_file=str(data / "spm8k.model"))
    pieces = output.read_text(encoding="utf-8").splitlines()
    hypotheses = [processor.decode_pieces(line.split()) for line in pieces]
    references = (data / f"raw.test_2016_flickr.{tgt}").read_text(encoding="utf-8").splitlines()
    return {"beam": beam, "process_seconds": seconds,
            "sentences_per_s": len(hypotheses) / seconds}, hypotheses, references
