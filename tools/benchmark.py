#!/usr/bin/env python3
"""Benchmark training and translation speed on a fixed, described workload.

Default workload: the Multi30k de-en reference model (configs/multi30k_de-en.yaml)
trained on the corpus in --data; translation of the 1,000-sentence
test_2016_flickr source side with a trained checkpoint (--checkpoint), greedy
and beam 5, in fp32, bf16 and int8, with BLEU so that speed is never bought
with quality silently. Also measures the machine's own matrix-multiply peak in the
same run and the model's share of it.

    python tools/benchmark.py --data ../shared/data/multi30k \\
        --checkpoint runs/multi30k_de-en/best.pt --json benchmark.json

Prints a table and writes JSON. Figures are medians where repeated.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nmt.config import Config, ModelConfig, load_config  # noqa: E402
from nmt.data import make_batch  # noqa: E402
from nmt.preprocess import preprocess  # noqa: E402
from nmt.scoring import corpus_scores  # noqa: E402
from nmt.textio import read_lines  # noqa: E402
from nmt.training import Trainer  # noqa: E402


def matmul_peak(dtype: torch.dtype, m: int, k: int, n: int, repeats: int = 5) -> float:
    """GFLOP/s of torch.matmul at one shape (median of `repeats` timed runs)."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    iterations = max(1, int(2e10 / (2 * m * k * n)))  # about 20 GFLOP per timed run
    torch.matmul(a, b)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(iterations):
            torch.matmul(a, b)
        rates.append(2 * m * k * n * iterations / (time.perf_counter() - started) / 1e9)
    return statistics.median(rates)


def flops_per_target_token(model: ModelConfig, src_per_tgt: float, mean_src_len: float,
                           tgt_vocab: int) -> float:
    """Forward + backward FLOPs per target token (3x the forward's multiply-adds x 2)."""
    enc, dec, emb = model.encoder_hidden_size, model.decoder_hidden_size, model.embedding_size
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[model.cell]
    encoder = sum(2 * 2 * gates * enc * ((emb if i == 0 else 2 * enc) + enc)
                  for i in range(model.encoder_layers))  # per source token, both directions
    context = 2 * enc
    forward = src_per_tgt * encoder
    if model.attention == "additive":
        forward += src_per_tgt * 2 * context * model.attention_size  # keys, once per token
        forward += 2 * dec * model.attention_size  # query projection
        forward += mean_src_len * (3 * model.attention_size + 2 * context)  # scores + context
    forward += sum(2 * gates * dec * ((emb + context if i == 0 else dec) + dec)
                   for i in range(model.decoder_layers))
    forward += 2 * (dec + context + emb) * model.output_size
    forward += 2 * model.output_size * tgt_vocab
    return 3 * forward


def benchmark_training(config: Config, steps: int, warmup: int, profile: bool) -> dict:
    trainer = Trainer(config, overwrite=True)
    cfg = config.training
    batches = trainer.epoch_batches(1)[: warmup + steps]
    tokens, seconds = 0, 0.0
    profiler = torch.profiler.profile() if profile else contextlib.nullcontext()
    with profiler:
        for i, indices in enumerate(batches):
            started = time.perf_counter()
            batch = make_batch(trainer.train_data, indices).to(trainer.device)
            trainer.train_step([batch], batch.num_tokens)
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                seconds += time.perf_counter() - started
                tokens += batch.num_tokens
    if profile:  # where the time goes, by operator (the profiler slows the steps down)
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    data = trainer.train_data
    src_per_tgt = float((data.src_lengths().sum()) / (data.tgt_lengths() + 1).sum())
    flops = flops_per_target_token(config.model, src_per_tgt,
                                   float(data.src_lengths().float().mean()),
                                   len(trainer.tgt_vocab))
    return {"steps": steps, "warmup_steps": warmup, "batch_tokens": cfg.batch_tokens,
            "target_tokens_per_s": tokens / seconds, "steps_per_s": steps / seconds,
            "mflop_per_target_token": flops / 1e6,
            "achieved_gflop_s": tokens / seconds * flops / 1e9,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def benchmark_translation(checkpoint: Path, source: Path, reference: Path, beam: int,
                          precision: str, threads: int, batch_size: int | None) -> dict:
    """Whole process, as a user runs it: interpreter start, model load, translation, exit."""
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "hyp"
        command = [sys.executable, "-m", "nmt", "-q", "translate", "-c", str(checkpoint),
                   "-i", str(source), "-o", str(output), "--beam", str(beam), "--device", "cpu",
                   "--precision", precision]
        if batch_size:
            command += ["--batch-size", str(batch_size)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO, env=env)
        seconds = time.perf_counter() - started
        hypotheses = list(read_lines(output))
    references = list(read_lines(reference))
    bleu, chrf = corpus_scores(hypotheses, [references], ("bleu", "chrf"))
    pieces = sum(len(h.split()) for h in hypotheses)
    return {"beam": beam, "precision": precision, "sentences": len(hypotheses),
            "process_seconds": seconds, "sentences_per_s": len(hypotheses) / seconds,
            "words_per_s": pieces / seconds, "bleu": bleu.score, "bleu_signature": bleu.signature,
            "chrf": chrf.score}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="directory with Multi30k *.gz files")
    parser.add_argument("--config", default=str(REPO / "configs/multi30k_de-en.yaml"))
    parser.add_argument("--checkpoint", help="trained checkpoint for the translation figures")
    parser.add_argument("--work", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=100, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before them")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="training.precision for the training figures")
    parser.add_argument("--translate-batch-size", type=int, default=None,
                        help="sentences per translation batch (default: the checkpoint's)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--translate-precisions", default="fp32,bf16,int8",
                        help="comma-separated translation precisions to measure")
    parser.add_argument("--profile", action="store_true",
                        help="print torch.profiler's operator table for the training steps")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="nmt-bench-"))

    config = load_config(args.config)
    src, tgt = config.data.src_lang, config.data.tgt_lang
    config.data.train = f"{args.data}/train"
    config.data.dev = f"{args.data}/val"
    config.data.test = None
    config.data.prepared_dir = str(work / "prepared")
    config.training.output_dir = str(work / "run")
    config.training.device = args.device
    config.training.precision = args.precision
    results: dict = {
        "precision": args.precision,
        "machine": {"cpu_count": os.cpu_count(), "threads": args.threads,
                    "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "device": args.device if args.device == "cpu"
                    else torch.cuda.get_device_name(0)},
        "workload": f"{Path(args.config).name} ({src}->{tgt}), training data {args.data}",
    }
    results["matmul_gflop_s"] = {
        "fp32_2048": matmul_peak(torch.float32, 2048, 2048, 2048),
        "fp32_decoder_step": matmul_peak(torch.float32, 64, 768, 2048),
        "bf16_2048": matmul_peak(torch.bfloat16, 2048, 2048, 2048),
    }
    if not (Path(config.data.prepared_dir) / "stats.json").exists():
        started = time.perf_counter()
        stats = preprocess(config)
        results["preprocess"] = {"seconds": time.perf_counter() - started,
                                 "pairs_per_s": stats["train_pairs_per_second"]}
    results["training"] = benchmark_training(config, args.steps, args.warmup, args.profile)
    results["training"]["fraction_of_fp32_peak"] = (
        results["training"]["achieved_gflop_s"] / results["matmul_gflop_s"]["fp32_2048"])

    if args.checkpoint:
        source = Path(f"{args.data}/test_2016_flickr.{src}.gz")
        reference = Path(f"{args.data}/test_2016_flickr.{tgt}.gz")
        results["translation"] = [benchmark_translation(Path(args.checkpoint), source, reference,
                                                        beam, precision, args.threads,
                                                        args.translate_batch_size)
                                  for precision in args.translate_precisions.split(",")
                                  for beam in (1, 5)]
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


def print_table(results: dict) -> None:
    machine = results["machine"]
    print(f"machine: {machine['cpu_count']} CPUs ({machine['processor']}), "
          f"{machine['threads']} threads, torch {machine['torch']}, device {machine['device']}")
    print(f"workload: {results['workload']}; training precision {results['precision']}")
    peaks = results["matmul_gflop_s"]
    print(f"matmul peak GFLOP/s: fp32 2048^3 {peaks['fp32_2048']:.0f}, fp32 64x768x2048 "
          f"{peaks['fp32_decoder_step']:.0f}, bf16 2048^3 {peaks['bf16_2048']:.0f}")
    if "preprocess" in results:
        print(f"preprocess: {results['preprocess']['pairs_per_s']:.0f} pairs/s")
    t = results["training"]
    print(f"training: {t['target_tokens_per_s']:.0f} target tok/s, {t['steps_per_s']:.2f} "
          f"steps/s ({t['steps']} steps after {t['warmup_steps']} warm-up), "
          f"{t['mflop_per_target_token']:.1f} MFLOP/token -> {t['achieved_gflop_s']:.0f} GFLOP/s "
          f"= {100 * t['fraction_of_fp32_peak']:.0f}% of fp32 peak; peak RSS "
          f"{t['peak_rss_mb']:.0f} MB")
    for r in results.get("translation", []):
        mode = f"beam {r['beam']}" if r["beam"] > 1 else "greedy"
        print(f"translate {mode:7s} {r['precision']}: "
              f"{r['sentences_per_s']:6.1f} sent/s (whole process, {r['process_seconds']:.1f} s), "
              f"BLEU {r['bleu']:.2f}, chrF {r['chrf']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
