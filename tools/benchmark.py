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

With `--peer-opennmt VENV` (a virtual environment with OpenNMT-py 3.5.1) it
runs the side-by-side comparison instead: both toolkits train the same
architecture for --peer-steps steps from a cold start, one after the other,
then translate test_2016_flickr greedy and with beam 5 as whole processes; it
prints both toolkits' figures and their ratios (see tools/peer_opennmt.py).

    python tools/benchmark.py --data data/multi30k --peer-opennmt ../peers/onmt-venv \\
        --checkpoint runs/multi30k_de-en/best.pt --peer-steps 200
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
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
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from nmt.config import Config, ModelConfig, load_config  # noqa: E402
from nmt.data import make_batch  # noqa: E402
from nmt import layers  # noqa: E402
from nmt.device import limit_onednn_kernel_cache  # noqa: E402
from nmt.preprocess import preprocess  # noqa: E402
from nmt.scoring import corpus_scores  # noqa: E402
from nmt.textio import read_lines  # noqa: E402
from nmt.training import Trainer  # noqa: E402
import peer_opennmt  # noqa: E402


def matmul_peak(dtype: torch.dtype, m: int, k: int, n: int, repeats: int = 5,
                onednn: bool = False) -> float:
    """GFLOP/s of x W^T at one shape, by torch.matmul or (`onednn`) by the oneDNN product
    nmt's layers use; the median of `repeats` timed runs."""
    x, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
    if onednn:
        return _rate(lambda: layers.onednn_product(x, w, None), m, k, n, repeats)
    return _rate(lambda: torch.matmul(x, w.t()), m, k, n, repeats)


def _rate(product, m: int, k: int, n: int, repeats: int) -> float:
    iterations = max(1, int(2e10 / (2 * m * k * n)))  # about 20 GFLOP per timed run
    product()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(iterations):
            product()
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
    return {"beam": beam, "precision": precision,
            **translation_figures(hypotheses, list(read_lines(reference)), seconds)}


def translation_figures(hypotheses: list[str], references: list[str], seconds: float) -> dict:
    bleu, chrf = corpus_scores(hypotheses, [references], ("bleu", "chrf"))
    words = sum(len(h.split()) for h in hypotheses)
    return {"sentences": len(hypotheses), "process_seconds": seconds,
            "sentences_per_s": len(hypotheses) / seconds, "words_per_s": words / seconds,
            "words_per_sentence": words / len(hypotheses), "bleu": bleu.score,
            "bleu_signature": bleu.signature, "chrf": chrf.score}


def log_time(line: str) -> float:
    """Seconds since the epoch of a train.log line ('2026-11-22 12:00:00,123 INFO ...')."""
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def cold_start_training(config: Config, steps: int, threads: int, work: Path) -> dict:
    """`nmt train` for `steps` steps in a fresh process, timed as the peer is.

    Target tokens are nmt's own count (non-padding target pieces + EOS, summed
    over the steps' batches); loop seconds are its own timer (batch building,
    forward, backward and update, summed over the steps); the last update ended
    at the final validation's log line minus the validation's duration.
    """
    run = work / "cold_start"
    settings = config.to_dict()
    settings["training"].update(output_dir=str(run), max_steps=steps, validate_every=steps,
                                log_every=steps, validation_bleu=False, num_threads=threads,
                                max_minutes=0)
    path = work / "cold_start.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    launched, started = time.time(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "nmt", "-q", "train", str(path), "--overwrite"],
                   check=True, cwd=REPO, env=env)
    process_seconds = time.perf_counter() - started
    record = json.loads((run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    [line] = [line for line in (run / "train.log").read_text(encoding="utf-8").splitlines()
              if f"validation at step {steps}:" in line]
    return {"steps": steps, "target_tokens": record["train_tokens"],
            "loop_seconds": record["train_seconds"],
            "target_tokens_per_s": record["train_tokens"] / record["train_seconds"],
            "launch_to_last_update_seconds":
                log_time(line) - record["validation_seconds"] - launched,
            "process_seconds": process_seconds, "checkpoint": str(run / "last.pt")}


def main() -> int:
    limit_onednn_kernel_cache()  # as the nmt command does
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
    parser.add_argument("--cpu-matmul", choices=layers.CPU_MATMUL_CHOICES,
                        default=layers.requested_cpu_matmul(),
                        help="float32 CPU products of nmt's layers, here and in the nmt "
                        "processes it starts (default: NMT_CPU_MATMUL, else onednn)")
    parser.add_argument("--translate-precisions", default="fp32,bf16,int8",
                        help="comma-separated translation precisions to measure")
    parser.add_argument("--profile", action="store_true",
                        help="print torch.profiler's operator table for the training steps")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--peer-opennmt", metavar="VENV",
                        help="compare with OpenNMT-py installed in this virtual environment "
                        "(instead of the figures above)")
    parser.add_argument("--peer-steps", type=int, default=200,
                        help="training steps of each toolkit in the comparison (default 200)")
    parser.add_argument("--peer-checkpoint",
                        help="a trained OpenNMT-py checkpoint for its translation figures "
                        "(default: the one its comparison run trained)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["NMT_CPU_MATMUL"] = args.cpu_matmul  # for the nmt processes started below
    layers.use_onednn(args.cpu_matmul == "onednn")
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
        "cpu_matmul": args.cpu_matmul if layers.onednn_available() else "pytorch",
        "machine": {"cpu_count": os.cpu_count(), "threads": args.threads,
                    "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "device": args.device if args.device == "cpu"
                    else torch.cuda.get_device_name(0)},
        "workload": f"{Path(args.config).name} ({src}->{tgt}), training data {args.data}",
    }
    if not (Path(config.data.prepared_dir) / "stats.json").exists():
        started = time.perf_counter()
        stats = preprocess(config)
        results["preprocess"] = {"seconds": time.perf_counter() - started,
                                 "pairs_per_s": stats["train_pairs_per_second"]}
    if args.peer_opennmt:
        results["comparison"] = compare_with_opennmt(args, config, work)
        print_comparison(results)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
        return 0
    results["matmul_gflop_s"] = {
        "fp32_2048": matmul_peak(torch.float32, 2048, 2048, 2048),
        "fp32_decoder_step": matmul_peak(torch.float32, 64, 768, 2048),
        "bf16_2048": matmul_peak(torch.bfloat16, 2048, 2048, 2048),
    }
    if layers.onednn_available():
        results["matmul_gflop_s"].update(
            fp32_2048_onednn=matmul_peak(torch.float32, 2048, 2048, 2048, onednn=True),
            fp32_decoder_step_onednn=matmul_peak(torch.float32, 64, 768, 2048, onednn=True))
    results["training"] = benchmark_training(config, args.steps, args.warmup, args.profile)
    # The machine's fp32 peak: the faster of the two products it has.
    fp32_peak = max(v for k, v in results["matmul_gflop_s"].items() if k.startswith("fp32_2048"))
    results["training"]["fraction_of_fp32_peak"] = (
        results["training"]["achieved_gflop_s"] / fp32_peak)

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


def compare_with_opennmt(args: argparse.Namespace, config: Config, work: Path) -> dict:
    """Both toolkits, one after the other: training from a cold start, then translation."""
    src, tgt = config.data.src_lang, config.data.tgt_lang
    venv, peer_work = Path(args.peer_opennmt).resolve(), work / "opennmt"
    ours = cold_start_training(config, args.peer_steps, args.threads, work)
    peer_opennmt.prepare_data(Path(args.data), peer_work, src, tgt)
    theirs = peer_opennmt.train(venv, peer_work, args.peer_steps, args.threads)
    checkpoint = Path(args.checkpoint or ours["checkpoint"])
    source = Path(f"{args.data}/test_2016_flickr.{src}.gz")
    reference = Path(f"{args.data}/test_2016_flickr.{tgt}.gz")
    our_translations = [benchmark_translation(checkpoint, source, reference, beam, precision,
                                              args.threads, args.translate_batch_size)
                        for precision in args.translate_precisions.split(",") for beam in (1, 5)]
    their_translations = []
    for beam in (1, 5):
        timing, hypotheses, references = peer_opennmt.translate(
            venv, peer_work, Path(args.peer_checkpoint or theirs["checkpoint"]), beam,
            args.threads, src, tgt)
        their_translations.append({**timing, **translation_figures(
            hypotheses, references, timing["process_seconds"])})
    return {"nmt": {"training": ours, "translation": our_translations,
                    "translation_checkpoint": str(checkpoint)},
            "opennmt": {"training": theirs, "translation": their_translations,
                        "translation_checkpoint": args.peer_checkpoint or theirs["checkpoint"]}}


def print_comparison(results: dict) -> None:
    print_machine(results)
    ours, theirs = results["comparison"]["nmt"], results["comparison"]["opennmt"]
    a, b = ours["training"], theirs["training"]
    print(f"training, {a['steps']} steps from a cold start, one toolkit after the other "
          "(target tokens: each toolkit's own count of non-padding target pieces + EOS)")
    print(f"  {'':10s} {'tokens':>8s} {'loop s':>7s} {'tok/s':>6s} {'launch->last update':>20s}")
    for name, t in (("nmt", a), ("OpenNMT-py", b)):
        print(f"  {name:10s} {t['target_tokens']:8d} {t['loop_seconds']:7.1f} "
              f"{t['target_tokens_per_s']:6.0f} {t['launch_to_last_update_seconds']:14.1f} s "
              f"({t['target_tokens'] / t['launch_to_last_update_seconds']:.0f} tok/s)")
    print(f"  ratio nmt / OpenNMT-py: {a['target_tokens_per_s'] / b['target_tokens_per_s']:.2f}x "
          "(loop), {:.2f}x (launch to last update)".format(
              (a["target_tokens"] / a["launch_to_last_update_seconds"])
              / (b["target_tokens"] / b["launch_to_last_update_seconds"])))
    print(f"translation of test_2016_flickr, whole process (nmt: {ours['translation_checkpoint']};"
          f" OpenNMT-py: {theirs['translation_checkpoint']})")
    peer = {r["beam"]: r for r in theirs["translation"]}
    for r in theirs["translation"] + ours["translation"]:
        name = f"nmt {r['precision']}" if "precision" in r else "OpenNMT-py"
        mode = f"beam {r['beam']}" if r["beam"] > 1 else "greedy"
        ratio = ("" if "precision" not in r else
                 f", {r['sentences_per_s'] / peer[r['beam']]['sentences_per_s']:.2f}x OpenNMT-py")
        print(f"  {mode:7s} {name:10s} {r['sentences_per_s']:6.1f} sent/s "
              f"({r['process_seconds']:.1f} s), {r['words_per_sentence']:.1f} words/sentence, "
              f"BLEU {r['bleu']:.2f}{ratio}")


def print_machine(results: dict) -> None:
    machine = results["machine"]
    print(f"machine: {machine['cpu_count']} CPUs ({machine['processor']}), "
          f"{machine['threads']} threads, torch {machine['torch']}, device {machine['device']}")
    print(f"workload: {results['workload']}; training precision {results['precision']}; "
          f"fp32 CPU products: {results['cpu_matmul']}")


def print_table(results: dict) -> None:
    print_machine(results)
    peaks = results["matmul_gflop_s"]
    print(f"matmul peak GFLOP/s: fp32 2048^3 {peaks['fp32_2048']:.0f}, fp32 64x768x2048 "
          f"{peaks['fp32_decoder_step']:.0f}, bf16 2048^3 {peaks['bf16_2048']:.0f} (torch.matmul)")
    if "fp32_2048_onednn" in peaks:
        print(f"  oneDNN fp32 product: 2048^3 {peaks['fp32_2048_onednn']:.0f}, 64x768x2048 "
              f"{peaks['fp32_decoder_step_onednn']:.0f}")
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
