#!/usr/bin/env python3
"""Score one model, its checkpoint average and a seed ensemble: the README's converged tables.

Given the run directories of independently seeded trainings of one config (the
first is "the" single model), this averages each run's last N periodic
checkpoints with `nmt average`, then translates the test source with `nmt
translate` (whole process, timed) for each system, greedy and beam 5, and
scores it as `nmt score` does (nmt.scoring): detokenised sacreBLEU and chrF against the
reference, and tokenised lowercased BLEU (`--moses-tok`) against the dataset's
own tokenised reference. Systems: the first run's best.pt, the average of its
last N checkpoints, the ensemble of every run's best.pt, and the ensemble of
every run's average (choose N and the length penalty, --alpha, on the dev set).
Prints a Markdown table (and writes JSON with --json).

    python tools/converged_results.py --runs runs/m30k_de-en_s1 runs/m30k_de-en_s2 \\
        --src data/multi30k/test_2016_flickr.de.gz --ref data/multi30k/test_2016_flickr.en.gz \\
        --tok-ref ../shared/data/multi30k/tok/test_2016_flickr.lc.norm.tok.en.gz \\
        --lang en --out results/de-en
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nmt.scoring import ScoreOptions, corpus_scores  # noqa: E402
from nmt.textio import read_lines  # noqa: E402

STOP_LINE = re.compile(r"stopped: (.*); (\d+) steps, (\d+) s of training, (\d+) target tokens/s")


def nmt(*args: str) -> str:
    """Run `python -m nmt ARGS` and return its standard output; fail loudly."""
    done = subprocess.run([sys.executable, "-m", "nmt", *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"converged_results: nmt {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def training_summary(run: Path) -> dict:
    """Steps, training seconds and tokens/s from the run's own log (the last stop)."""
    stops = STOP_LINE.findall((run / "train.log").read_text(encoding="utf-8"))
    if not stops:
        sys.exit(f"converged_results: {run / 'train.log'}: no 'stopped:' line; still training?")
    reason, steps, seconds, tokens_per_second = stops[-1]
    return {"run": str(run), "stopped": reason, "steps": int(steps),
            "train_seconds": int(seconds), "target_tokens_per_second": int(tokens_per_second)}


def scores(hypotheses: Path, ref: str, tok_ref: str, lang: str) -> dict:
    """What `nmt score` prints, through the same functions: detokenised BLEU and chrF, and
    tokenised lowercased BLEU (`--moses-tok LANG`) against the tokenised reference."""
    lines = list(read_lines(hypotheses))
    bleu, chrf = corpus_scores(lines, [list(read_lines(ref))], ("bleu", "chrf"))
    [tok] = corpus_scores(lines, [list(read_lines(tok_ref))], ("bleu",),
                          ScoreOptions(tokenize="none", moses_lang=lang))
    return {"bleu": bleu.score, "chrf": chrf.score, "tok_lc_bleu": tok.score,
            "signatures": {"bleu": bleu.signature, "chrf": chrf.signature,
                           "tok_lc_bleu": tok.signature}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, type=Path,
                        help="run directories of one config, different seeds; the first is "
                        "the single model")
    parser.add_argument("--src", required=True, help="test source file")
    parser.add_argument("--ref", required=True, help="detokenised test reference")
    parser.add_argument("--tok-ref", required=True,
                        help="the dataset's lowercased tokenised reference")
    parser.add_argument("--lang", required=True, help="target language (Moses tokeniser)")
    parser.add_argument("--average-last", type=int, default=5,
                        help="periodic checkpoints averaged per run (default 5)")
    parser.add_argument("--beams", default="1,5", help="beam sizes (default 1,5)")
    parser.add_argument("--alpha", type=float,
                        help="length penalty (default: the checkpoints' decoding config)")
    parser.add_argument("--out", required=True, type=Path,
                        help="directory for averaged checkpoints and translations")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    training = [training_summary(run) for run in args.runs]
    averages = []
    for run in args.runs:
        averages.append(args.out / f"{run.name}.avg{args.average_last}.pt")
        nmt("average", "--last", str(args.average_last), str(run), "-o", str(averages[-1]))
    systems = {"single": [args.runs[0] / "best.pt"],
               f"average of last {args.average_last}": [averages[0]],
               f"ensemble of {len(args.runs)}": [run / "best.pt" for run in args.runs],
               f"ensemble of {len(args.runs)} averages": averages}
    if len(args.runs) == 1:
        systems = dict(list(systems.items())[:2])

    rows = []
    for name, checkpoints in systems.items():
        for beam in (int(b) for b in args.beams.split(",")):
            hypotheses = args.out / f"{name.replace(' ', '_')}.beam{beam}.txt"
            options = [arg for c in checkpoints for arg in ("-c", str(c))]
            if args.alpha is not None:
                options += ["--alpha", str(args.alpha)]
            start = time.perf_counter()
            nmt("translate", *options, "-i", args.src, "-o", str(hypotheses),
                "--beam", str(beam), "--precision", "fp32")
            seconds = time.perf_counter() - start
            rows.append({"system": name, "checkpoints": [str(c) for c in checkpoints],
                         "beam": beam, "alpha": args.alpha,
                         "translate_seconds": round(seconds, 2),
                         **scores(hypotheses, args.ref, args.tok_ref, args.lang)})

    print("| system | search | BLEU | chrF | tok. lc. BLEU | translate (whole process) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        search = "greedy" if row["beam"] == 1 else f"beam {row['beam']}"
        print(f"| {row['system']} | {search} | {row['bleu']:.2f} | {row['chrf']:.2f} | "
              f"{row['tok_lc_bleu']:.2f} | {row['translate_seconds']:.1f} s |")
    print()
    for summary in training:
        print(f"{summary['run']}: {summary['steps']} steps, {summary['train_seconds']} s of "
              f"training, {summary['target_tokens_per_second']} target tokens/s "
              f"(stopped: {summary['stopped']})")
    print("signatures:", json.dumps(rows[0]["signatures"]))
    if args.json:
        args.json.write_text(json.dumps({"training": training, "rows": rows}, indent=1) + "\n",
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
