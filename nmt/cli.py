"""The `nmt` command: preprocess, train, translate, average, score, info, ablate,
serve, download, plot.

This is the only place that parses arguments and turns errors into messages:
an `NmtError` (or an OS error such as a full disk) prints one line and exits
with status 1. Subcommands import their modules when they run, so that
`nmt score` and `nmt --help` answer without loading PyTorch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import signal
import sys
from typing import Optional, Sequence

from nmt import __version__
from nmt.config import ServeLimits
from nmt.device import limit_onednn_kernel_cache
from nmt.download import add_download_arguments, run_download
from nmt.errors import NmtError
from nmt.layers import requested_cpu_matmul, use_onednn

log = logging.getLogger("nmt")


def main(argv: Optional[Sequence[str]] = None) -> int:
    limit_onednn_kernel_cache()
    parser = build_parser()
    args = parser.parse_args(argv)
    # Under torchrun only rank 0 reports progress; the others speak up for problems only.
    quiet = args.quiet or int(os.environ.get("RANK", "0")) > 0
    _log_to_stderr(logging.WARNING if quiet else logging.INFO,
                   "%(asctime)s %(message)s" if args.command in ("train", "ablate")
                   else "%(message)s")
    try:
        use_onednn(requested_cpu_matmul() == "onednn")
        return args.run(args)
    except NmtError as error:
        print(f"nmt {args.command}: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`nmt score ... | head`): stop quietly, as Unix tools do,
        # and keep Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"nmt {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nmt {args.command}: interrupted", file=sys.stderr)
        return 130


def _log_to_stderr(level: int, layout: str) -> None:
    """One stderr handler on the package's logger (replacing a previous call's)."""
    for handler in list(log.handlers):
        if getattr(handler, "nmt_cli", False):
            log.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.nmt_cli = True
    handler.setLevel(level)  # train.log gets the DEBUG lines through its own handler
    handler.setFormatter(logging.Formatter(layout, datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmt", description="LSTM encoder-decoder neural machine translation with "
        "additive attention: preprocess a parallel corpus, train, translate, score.")
    parser.add_argument("--version", action="version", version=f"nmt {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("preprocess", help="normalise, filter, train SentencePiece, encode",
                            description="Turn the raw parallel text named in CONFIG's data "
                            "section into SentencePiece model(s) and binary token ids in "
                            "data.prepared_dir.")
    p.add_argument("config", help="YAML experiment config")
    p.add_argument("--replace-invalid", action="store_true",
                   help="replace invalid UTF-8 bytes with U+FFFD instead of failing")
    p.set_defaults(run=_run_preprocess)

    p = commands.add_parser("train", help="train a model",
                            description="Train the model of CONFIG on its prepared data; "
                            "writes last.pt, best.pt, train.log and metrics.jsonl to "
                            "training.output_dir. If that directory holds a run with the same "
                            "config, it is resumed exactly where it stopped. SIGINT/SIGTERM "
                            "save a checkpoint and exit.")
    p.add_argument("config", help="YAML experiment config")
    p.add_argument("--device", help="override training.device (auto, cpu, cuda, cuda:N)")
    p.add_argument("--max-minutes", type=float,
                   help="override training.max_minutes (0 = no limit)")
    p.add_argument("--max-steps", type=int, help="override training.max_steps (0 = no limit)")
    p.add_argument("--seed", type=int,
                   help="override training.seed (initial weights, batch order, dropout), "
                   "e.g. for independently seeded ensemble members")
    p.add_argument("--output-dir", help="override training.output_dir")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in an output_dir that holds one, deleting its "
                   "checkpoints (without it, a run with the same config is resumed)")
    p.set_defaults(run=_run_train)

    p = commands.add_parser("translate", help="translate text with a trained model",
                            description="Translate raw text, one sentence per line; every "
                            "input line gives exactly one output line (or, with --n-best K, "
                            "K Moses n-best lines), in order. Input from a terminal or a pipe "
                            "is translated line by line as it arrives.")
    p.add_argument("--checkpoint", "-c", required=True, action="append",
                   help="checkpoint file (best.pt or last.pt); give it several times for an "
                   "ensemble (models sharing their vocabularies, probabilities averaged)")
    p.add_argument("-i", "--input", help="input file, plain or .gz (default: stdin)")
    p.add_argument("-o", "--output", help="output file, written atomically (default: stdout)")
    p.add_argument("--beam", "-k", type=int, help="beam size; 1 = greedy "
                   "(default: the checkpoint config's decoding.beam_size)")
    p.add_argument("--n-best", type=int, help="hypotheses per input line, best first, at most "
                   "the beam size (default 1); text output then has Moses n-best lines "
                   "'LINE ||| TEXT ||| logprob=L ||| SCORE' (LINE counts from 0)")
    p.add_argument("--output-format", choices=["text", "jsonl"], default="text",
                   help="text (default): translations only; jsonl: one JSON object per input "
                   "line with source, hypotheses, scores, pieces and per-piece log-probabilities")
    p.add_argument("--attention", action="store_true",
                   help="with --output-format jsonl: add each hypothesis's attention matrix "
                   "(target pieces + EOS x source pieces) and its Pharaoh word alignment")
    p.add_argument("--force-target", metavar="FILE",
                   help="forced decoding: score FILE's lines as translations of the input "
                   "instead of searching (text output: total log-probability and perplexity)")
    p.add_argument("--batch-size", type=int, help="sentences per batch (default: from config)")
    p.add_argument("--alpha", type=float,
                   help="GNMT length penalty alpha (default: decoding.length_penalty)")
    p.add_argument("--max-length-ratio", type=float,
                   help="output length limit: ratio * input pieces + 10")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default="auto",
                   help="auto (default): bf16 where the hardware runs it natively (CPUs with "
                   "AVX-512 BF16 or AMX, GPUs of compute capability 8.0+), else fp32; bf16: "
                   "autocast, refused where the hardware lacks it; int8: int8 weights and "
                   "activations (each row scaled on its own, so a line's output does not depend "
                   "on its batch) in the recurrent and linear layers, CPU only. `nmt info` shows what this "
                   "machine has; README.md gives their speed and BLEU.")
    p.add_argument("--replace-invalid", action="store_true",
                   help="replace invalid UTF-8 bytes with U+FFFD instead of failing")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: 0, "
                   "PyTorch's default: one per core; on a busy machine fewer can be faster)")
    p.set_defaults(run=_run_translate)

    p = commands.add_parser("average", help="average the weights of checkpoints",
                            description="Average the weights of compatible checkpoints (same "
                            "model config, vocabularies and parameters) into one checkpoint "
                            "for translation, without training state. With --last N, average "
                            "the N periodic checkpoints (ckpt-STEP.pt, see "
                            "training.keep_checkpoints) of RUN_DIR with the highest steps.")
    p.add_argument("inputs", nargs="+", metavar="CKPT",
                   help="checkpoint files; with --last, one run directory")
    p.add_argument("--last", type=int, metavar="N",
                   help="average the last N periodic checkpoints of the run directory given")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (atomically)")
    p.set_defaults(run=_run_average)

    p = commands.add_parser("score", help="corpus BLEU, chrF and TER with sacreBLEU",
                            description="Score detokenised hypotheses against one or more "
                            "references with sacreBLEU and print each score with its "
                            "signature. With --moses-tok, score tokenised, lowercased BLEU "
                            "as Multi30k papers report it (see README.md).")
    p.add_argument("--ref", "-r", required=True, nargs="+", action="extend", metavar="FILE",
                   help="reference file(s), one sentence per line, aligned with the "
                   "hypotheses; several references: --ref A B or --ref A --ref B")
    p.add_argument("--hyp", help="hypothesis file (default: stdin)")
    p.add_argument("--metrics", default="bleu,chrf,ter",
                   help="comma-separated subset of bleu,chrf,ter (default: all three)")
    p.add_argument("--tokenize", "-t",
                   help="sacreBLEU's BLEU tokenizer: 13a (default), none, intl, char, zh, "
                   "ja-mecab, ko-mecab, flores101, flores200")
    p.add_argument("--lowercase", "-lc", action="store_true",
                   help="case-insensitive BLEU and chrF (TER is case-insensitive anyway)")
    p.add_argument("--moses-tok", metavar="LANG",
                   help="lowercase, punctuation-normalise and Moses-tokenise the hypotheses "
                   "(language LANG) and score them against references tokenised the same "
                   "way, such as Multi30k's *.lc.norm.tok.* files (needs nmt[moses])")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=_run_score)

    p = commands.add_parser("info", help="versions and hardware, for bug reports",
                            description="Print the versions of nmt, PyTorch and Python, the "
                            "CPU as PyTorch and oneDNN report it (kernels, bf16, AMX, int8 "
                            "engines), the CUDA devices, and the precision `auto` picks.")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=_run_info)

    p = commands.add_parser("ablate", help="train and score variants of a config, equal budget",
                            description="Train every variant of ABLATION (a base config with "
                            "dotted-key overrides) in OUTPUT_DIR/NAME under the same budget, "
                            "score each best.pt on dev and test (greedy and beam 5, BLEU and "
                            "chrF) and write OUTPUT_DIR/results.json, results.md and "
                            "results.png (needs nmt[plot]). Run it again to resume: finished "
                            "variants are kept, an interrupted one continues. Exit status 1 if "
                            "a variant of this run failed (the others still run).")
    p.add_argument("ablation", help="YAML ablation file (see configs/ablation_multi30k.yaml)")
    p.add_argument("--only", help="comma-separated variant names to run (default: all)")
    p.add_argument("--overwrite", action="store_true",
                   help="train the selected variants from scratch, deleting their checkpoints")
    p.set_defaults(run=_run_ablate)

    p = commands.add_parser("serve", help="serve translations: a REST API and a web page",
                            description="Serve the models over HTTP (needs `pip install "
                            "nmt[serve]`): POST /v1/translate, GET /v1/models, GET /health, "
                            "the API's schema at /openapi.json and a page at /. Lines from "
                            "concurrent requests are translated together in batches. SIGTERM "
                            "or Ctrl-C stop accepting, answer what was accepted, and exit 0.")
    p.add_argument("--model", "-m", required=True, action="append", metavar="NAME=CHECKPOINT",
                   help="a model to serve under NAME; CHECKPOINT may list several files "
                   "separated by commas (an ensemble); give --model once per model")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s; 0 picks "
                   "a free one, printed at start)")
    p.add_argument("--api-key-file", metavar="FILE", help="require the key held in FILE on "
                   "/v1/ requests ('Authorization: Bearer KEY' or 'X-API-Key: KEY'), else 401")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default="fp32",
                   help="as for translate, but fp32 by default: in fp32 and int8 a line's "
                   "answer does not depend on the other lines of its batch; in bf16 (and auto "
                   "where it picks bf16) it can differ in the last digits")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: 0, "
                   "PyTorch's default: one per core; on a busy machine fewer can be faster)")
    limits = ServeLimits()
    p.add_argument("--max-lines", type=int, default=limits.max_lines,
                   help="lines per request (default: %(default)s)")
    p.add_argument("--max-line-chars", type=int, default=limits.max_line_chars,
                   help="characters per line (default: %(default)s); a line of more "
                   "SentencePiece pieces than translate accepts is refused too")
    p.add_argument("--max-body-bytes", type=int, default=limits.max_body_bytes,
                   help="request body size, checked before it is read (default: %(default)s)")
    p.add_argument("--max-beam", type=int, default=limits.max_beam,
                   help="largest beam a request may ask for (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=limits.batch_size,
                   help="lines translated together, across requests (default: %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=limits.max_wait_ms,
                   help="a batch starts once no more lines came for this long (default: "
                   "%(default)s)")
    p.add_argument("--queue-size", type=int, default=limits.queue_size,
                   help="lines waiting at most; a request that does not fit gets 503 with "
                   "Retry-After (default: %(default)s)")
    p.set_defaults(run=_run_serve)

    p = commands.add_parser("download", help="fetch a public corpus (Multi30k)",
                            description="Download Multi30k and verify its line counts.")
    add_download_arguments(p)
    p.set_defaults(run=run_download)

    p = commands.add_parser("plot", help="draw attention or training curves (needs nmt[plot])",
                            description="Draw a picture to a .png or .svg file (written "
                            "atomically). Needs matplotlib: pip install 'nmt[plot]'.")
    plots = p.add_subparsers(dest="plot", required=True, metavar="PLOT")
    q = plots.add_parser("attention", help="the attention matrix of one translation",
                         description="Draw the attention of one translation as a heatmap: "
                         "source pieces across, target pieces and </s> down. Translate --text "
                         "with --checkpoint, or take a line of the output of nmt translate "
                         "--output-format jsonl --attention (--jsonl).")
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the sentence to translate (needs --checkpoint)")
    source.add_argument("--jsonl", metavar="FILE", help="output of nmt translate "
                        "--output-format jsonl --attention (plain or .gz)")
    q.add_argument("--checkpoint", "-c", action="append", default=[],
                   help="checkpoint file, with --text; give it several times for an ensemble")
    q.add_argument("--line", type=int, default=1, help="with --jsonl: which line, from 1 "
                   "(default 1)")
    q.add_argument("--hypothesis", type=int, default=1,
                   help="which hypothesis, 1 = the best (default 1)")
    q.add_argument("--beam", "-k", type=int, help="with --text: beam size "
                   "(default: the checkpoint config's decoding.beam_size)")
    q.add_argument("--device", default="auto", help="with --text: auto, cpu, cuda or cuda:N "
                   "(default: auto)")
    q.add_argument("-o", "--output", required=True, help="picture file: .png or .svg")
    q.set_defaults(run=_run_plot_attention)
    q = plots.add_parser("curves", help="training curves of a run",
                         description="Draw training loss, dev perplexity, dev BLEU and "
                         "learning rate against the step, from RUN_DIR/metrics.jsonl.")
    q.add_argument("run_dir", metavar="RUN_DIR", help="a training output directory")
    q.add_argument("-o", "--output", required=True, help="picture file: .png or .svg")
    q.set_defaults(run=_run_plot_curves)
    return parser


def _run_preprocess(args: argparse.Namespace) -> int:
    from nmt.config import load_config
    from nmt.preprocess import preprocess

    stats = preprocess(load_config(args.config), replace_invalid=args.replace_invalid)
    train = stats["train"]
    drops = ", ".join(f"{reason} {n}" for reason, n in sorted(stats["drops"].items())) or "none"
    log.info("train: %d pairs read, %d kept (dropped: %s); %d source / %d target pieces",
             train["read"], train["pairs"], drops, train["src_tokens"], train["tgt_tokens"])
    for split in ("dev", "test"):
        if split in stats:
            log.info("%s: %d pairs", split, stats[split]["pairs"])
    log.info("done in %.1f s (%.0f train pairs/s)", stats["seconds"],
             stats["train_pairs_per_second"])
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from nmt.config import load_config
    from nmt.distributed import teardown_distributed
    from nmt.training import Trainer, TrainingInterrupted

    config = load_config(args.config)
    if args.device:
        config.training.device = args.device
    if args.max_minutes is not None:
        config.training.max_minutes = args.max_minutes
    if args.max_steps is not None:
        config.training.max_steps = args.max_steps
    if args.seed is not None:
        config.training.seed = args.seed
    if args.output_dir:
        config.training.output_dir = args.output_dir
    for key, problem in config.training.check():
        raise NmtError(f"training.{key}: {problem}")
    try:
        show_bar = not args.quiet and sys.stderr.isatty()
        validation = Trainer(config, overwrite=args.overwrite, progress_bar=show_bar).run()
    except TrainingInterrupted as interrupted:
        print(f"nmt train: {interrupted}", file=sys.stderr)
        return 128 + interrupted.signum
    finally:
        teardown_distributed()
    bleu = "-" if validation.bleu is None else f"{validation.bleu:.2f}"
    log.info("final dev perplexity %.2f, dev BLEU %s; checkpoints in %s",
             validation.perplexity, bleu, config.training.output_dir)
    return 0


def _run_translate(args: argparse.Namespace) -> int:
    from nmt.checkpoint import load_checkpoint
    from nmt.device import resolve_device
    from nmt.translate_io import translate_file
    from nmt.translation import Translator

    if args.attention and args.output_format != "jsonl":
        raise NmtError("--attention needs --output-format jsonl")
    _use_threads(args.threads)
    checkpoints = [load_checkpoint(path) for path in args.checkpoint]
    translator = Translator(checkpoints, resolve_device(args.device), args.precision,
                            names=args.checkpoint)
    # Command-line values override the checkpoint's decoding section, checked (errors
    # naming the flags) by the same `Translator.options` as every other caller's.
    flags = {"beam_size": "--beam", "length_penalty": "--alpha", "n_best": "--n-best",
             "max_length_ratio": "--max-length-ratio", "batch_size": "--batch-size"}
    translator.decoding = translator.options(flags, **{
        key: getattr(args, flag.lstrip("-").replace("-", "_")) for key, flag in flags.items()})
    translate_file(translator, args.input, args.output, args.output_format, args.attention,
                   args.force_target, args.replace_invalid)
    return 0


def _use_threads(threads: int) -> None:
    """--threads: torch's CPU threads for this process (0 keeps PyTorch's default)."""
    if threads < 0:
        raise NmtError(f"--threads: must be >= 0 (0 = PyTorch's default), got {threads}")
    if threads:
        import torch

        torch.set_num_threads(threads)


def _run_average(args: argparse.Namespace) -> int:
    from nmt.average import last_checkpoints, write_average

    paths = args.inputs
    if args.last is not None:
        if len(args.inputs) != 1:
            raise NmtError(f"--last takes one run directory, got {len(args.inputs)} paths")
        paths = last_checkpoints(args.inputs[0], args.last)
    write_average(paths, args.output)
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from nmt.info import machine_report, report_text

    report = machine_report()
    print(json.dumps(report, indent=1) if args.json else report_text(report))
    return 0


def _run_ablate(args: argparse.Namespace) -> int:
    from nmt.ablate import load_ablation, run_ablation
    from nmt.training import TrainingInterrupted

    ablation = load_ablation(args.ablation)
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    try:
        records = run_ablation(ablation, only, args.overwrite)
    except TrainingInterrupted as interrupted:
        print(f"nmt ablate: {interrupted}", file=sys.stderr)
        return 128 + interrupted.signum
    failed = [r["name"] for r in records if r["status"] != "ok"]
    if failed:
        print(f"nmt ablate: {len(failed)} of {len(records)} variants failed "
              f"({', '.join(failed)}); see {ablation.output_dir / 'results.md'}", file=sys.stderr)
        return 1
    log.info("%d variants done; results in %s", len(records), ablation.output_dir)
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    try:
        from nmt.serve import run_server
    except ModuleNotFoundError as error:
        if error.name not in ("fastapi", "uvicorn", "starlette", "pydantic"):
            raise
        raise NmtError(f"the server needs FastAPI and uvicorn ({error.name} is missing): "
                       "pip install 'nmt[serve]'") from None

    limits = ServeLimits(**{f.name: getattr(args, f.name)
                            for f in dataclasses.fields(ServeLimits)})
    for key, problem in limits.check():
        raise NmtError(f"--{key.replace('_', '-')}: {problem}, got {getattr(limits, key)!r}")
    _use_threads(args.threads)
    return run_server(_model_paths(args.model), args.host, args.port, limits,
                      args.api_key_file, args.device, args.precision)


def _model_paths(specs: Sequence[str]) -> dict[str, list[str]]:
    """--model values (NAME=CHECKPOINT[,CHECKPOINT...]) as name -> checkpoint paths."""
    models: dict[str, list[str]] = {}
    for spec in specs:
        name, _, paths = spec.partition("=")
        checkpoints = [path for path in paths.split(",") if path]
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or not checkpoints:
            raise NmtError(f"--model {spec}: expected NAME=CHECKPOINT[,CHECKPOINT...], NAME "
                           "of letters, digits, '.', '_' or '-'")
        if name in models:
            raise NmtError(f"--model {spec}: the name {name} is given twice")
        models[name] = checkpoints
    return models


def _run_score(args: argparse.Namespace) -> int:
    from nmt.scoring import METRICS, ScoreOptions, corpus_scores
    from nmt.textio import read_lines

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise NmtError(f"--metrics: unknown metric {', '.join(unknown) or '(none)'}; "
                       f"choose from {', '.join(METRICS)}")
    default_tokenize = "none" if args.moses_tok else "13a"
    options = ScoreOptions(args.tokenize or default_tokenize, args.lowercase, args.moses_tok)
    for key, problem in options.check():
        raise NmtError(f"--{key}: {problem}, got {getattr(options, key)!r}")
    hypotheses = list(read_lines(args.hyp or "-"))
    references = []
    for path in args.ref:
        lines = list(read_lines(path))
        if len(lines) != len(hypotheses):
            raise NmtError(f"{args.hyp or 'stdin'} has {len(hypotheses)} lines but {path} has "
                           f"{len(lines)}; hypotheses and references must match line for line")
        references.append(lines)
    scores = corpus_scores(hypotheses, references, metrics, options)
    if args.json:
        print(json.dumps([vars(s) for s in scores], indent=1))
    else:
        for s in scores:
            print(f"{s.detail}\n  signature: {s.signature}")
    return 0


def _run_plot_attention(args: argparse.Namespace) -> int:
    from nmt.plot import plot_attention

    if args.jsonl is not None and (args.checkpoint or args.beam is not None):
        raise NmtError("--jsonl plots a translation already made: "
                       "drop --checkpoint and --beam")
    plot_attention(args.output, args.checkpoint, args.text, args.jsonl, args.line,
                   args.hypothesis, args.beam, args.device)
    return 0


def _run_plot_curves(args: argparse.Namespace) -> int:
    from nmt.plot import plot_curves

    plot_curves(args.run_dir, args.output)
    return 0
