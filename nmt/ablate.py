"""`nmt ablate`: train variants of one config under an equal budget and score them.

An ablation file (YAML) names a base config, the budget and the variants:

    base: configs/multi30k_de-en.yaml     # a config file, or an inline config mapping
    budget: {max_minutes: 8}              # max_steps and/or max_minutes, for every variant
    output_dir: runs/ablation
    test: data/multi30k/test_2016_flickr  # optional split prefix; default: the base's data.test
    variants:
      - name: full
      - name: unidirectional
        overrides: {model.bidirectional: false}

Overrides are dotted config keys, checked like a config file's. Every variant
trains on the base's prepared data (preprocessed first if needed) in
OUTPUT_DIR/NAME with `Trainer`, which resumes an interrupted run from its
last.pt; then its best.pt translates the dev and test sources greedily and with
beam 5, scored with BLEU and chrF. OUTPUT_DIR gets results.json and results.md
after each variant and results.png (matplotlib) at the end. A variant recorded
as ok whose run directory holds the same config is not trained again; a failed
one is recorded with its error and the others still run.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from nmt.checkpoint import Checkpoint, load_checkpoint
from nmt.config import Config, config_from_dict, load_config, read_yaml
from nmt.device import resolve_device
from nmt.errors import NmtError
from nmt.model import count_parameters
from nmt.preprocess import preprocess
from nmt.scoring import corpus_scores
from nmt.textio import atomic_write, read_lines, resolve_split
from nmt.training import Trainer, TrainingInterrupted
from nmt.translation import Translator

log = logging.getLogger(__name__)

FILE_KEYS = ("base", "budget", "output_dir", "test", "variants")
BUDGET_KEYS = ("max_steps", "max_minutes")
SET_BY_ABLATION = ("training.output_dir", "training.max_steps", "training.max_minutes")
SHARED_SECTIONS = ("data", "sentencepiece")  # every variant trains on the same prepared data
SEARCHES = {"greedy": 1, "beam5": 5}  # name in the results -> beam size
METRICS = ("bleu", "chrf")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a variant name is a directory name


@dataclass
class Variant:
    name: str
    overrides: dict[str, Any]  # dotted key -> value, as written in the file
    config: Config  # the base with the budget, output directory and overrides applied


@dataclass
class Ablation:
    source: str  # the ablation file
    base_name: str  # the base config's path, or "inline"
    base: Config
    budget: dict[str, float]
    output_dir: Path
    test: Optional[str]  # split prefix of the test set, or None
    variants: list[Variant]

    def splits(self) -> dict[str, str]:
        """The scored splits: name -> prefix of the raw files."""
        return {"dev": self.base.data.dev, **({"test": self.test} if self.test else {})}

    def budget_text(self) -> str:
        parts = [f"max_minutes {self.budget['max_minutes']:g} (wall clock of the training "
                 "loop, validations included)" if key == "max_minutes"
                 else f"max_steps {self.budget['max_steps']}" for key in self.budget]
        return " or ".join(parts) + (", whichever comes first" if len(parts) > 1 else "")


def load_ablation(path: str | Path) -> Ablation:
    """Read an ablation file and build every variant's config; any problem is one line."""
    source = str(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise NmtError(f"{source}: expected a mapping with keys {', '.join(FILE_KEYS)}")
    for key in raw:
        if key not in FILE_KEYS:
            raise NmtError(f"{source}: {key}: unknown key (expected one of: "
                           f"{', '.join(FILE_KEYS)})")
    for key in ("base", "budget", "output_dir", "variants"):
        if key not in raw:
            raise NmtError(f"{source}: {key}: required")
    if isinstance(raw["base"], str):
        base_name, base_raw, base_source = raw["base"], read_yaml(raw["base"]) or {}, raw["base"]
    elif isinstance(raw["base"], dict):
        base_name, base_raw, base_source = "inline", raw["base"], f"{source}: base"
    else:
        raise NmtError(f"{source}: base: expected a config file path or a config mapping, "
                       f"got {raw['base']!r}")
    base = config_from_dict(base_raw, source=base_source)
    budget = _budget(raw["budget"], source)
    output_dir = raw["output_dir"]
    if not isinstance(output_dir, str) or not output_dir:
        raise NmtError(f"{source}: output_dir: expected a directory path, got {output_dir!r}")
    test = raw.get("test", base.data.test)
    if test is not None and not isinstance(test, str):
        raise NmtError(f"{source}: test: expected a split prefix, got {test!r}")
    if not isinstance(raw["variants"], list) or not raw["variants"]:
        raise NmtError(f"{source}: variants: expected a non-empty list of "
                       "{name, overrides} mappings")
    variants: list[Variant] = []
    for number, entry in enumerate(raw["variants"], start=1):
        variant = _variant(entry, number, base, budget, Path(output_dir), source)
        if any(v.name == variant.name for v in variants):
            raise NmtError(f"{source}: variant {variant.name}: the name is used twice")
        variants.append(variant)
    return Ablation(source, base_name, base, budget, Path(output_dir), test, variants)


def _budget(raw: Any, source: str) -> dict[str, float]:
    if not isinstance(raw, dict) or not raw or any(key not in BUDGET_KEYS for key in raw):
        raise NmtError(f"{source}: budget: expected a mapping with max_steps and/or "
                       f"max_minutes, got {raw!r}")
    for key, value in raw.items():
        wrong_type = isinstance(value, bool) or not isinstance(
            value, int if key == "max_steps" else (int, float))
        if wrong_type or value <= 0:
            kind = "a positive integer" if key == "max_steps" else "a positive number"
            raise NmtError(f"{source}: budget.{key}: expected {kind}, got {value!r}")
    return dict(raw)


def _variant(entry: Any, number: int, base: Config, budget: dict[str, float],
             output_dir: Path, source: str) -> Variant:
    if not isinstance(entry, dict) or set(entry) - {"name", "overrides"}:
        raise NmtError(f"{source}: variants: entry {number}: expected a mapping with keys "
                       f"name and overrides, got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise NmtError(f"{source}: variants: entry {number}: name: expected letters, digits, "
                       f"'.', '_' or '-' (it names a directory), got {name!r}")
    where = f"{source}: variant {name}"
    overrides = entry.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise NmtError(f"{where}: overrides: expected a mapping of dotted keys, "
                       f"got {overrides!r}")
    merged = copy.deepcopy(base.to_dict())
    merged["training"].update({key: budget.get(key, 0) for key in BUDGET_KEYS},
                              output_dir=str(output_dir / name))
    for key, value in overrides.items():
        parts = str(key).split(".")
        if len(parts) != 2 or not all(parts):
            raise NmtError(f"{where}: {key}: expected a dotted key SECTION.KEY, "
                           "e.g. model.bidirectional")
        if key in SET_BY_ABLATION:
            raise NmtError(f"{where}: {key}: set by the ablation (output_dir, budget) "
                           "for every variant alike")
        if parts[0] in SHARED_SECTIONS:
            raise NmtError(f"{where}: {key}: variants share the base's data and vocabulary; "
                           "use another ablation file for another corpus")
        merged.setdefault(parts[0], {})[parts[1]] = value
    return Variant(name, dict(overrides), config_from_dict(merged, source=where))


def run_ablation(ablation: Ablation, only: Optional[list[str]] = None,
                 overwrite: bool = False) -> list[dict]:
    """Train and score the variants named in `only` (default: all); returns their records.

    Raises `TrainingInterrupted` on SIGINT/SIGTERM during training: the finished
    variants are in results.json and the interrupted one resumes on the next call.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise NmtError("nmt ablate runs as one process; start it without torchrun")
    selected = _select(ablation, only)
    records = _previous_records(ablation)
    prepared = Path(ablation.base.data.prepared_dir)
    if not (prepared / "stats.json").is_file():  # preprocess writes it last
        log.info("preprocessing the base config's data into %s", prepared)
        preprocess(ablation.base)
    log.info("budget per variant: %s", ablation.budget_text())
    for number, variant in enumerate(selected, start=1):
        label = f"[{number}/{len(selected)}] {variant.name}"
        if not overwrite and _finished(records.get(variant.name), variant):
            log.info("%s: finished in an earlier run, not trained again", label)
            continue
        log.info("%s: training in %s; overrides: %s", label,
                 variant.config.training.output_dir, _describe(variant.overrides))
        records[variant.name] = run_variant(variant, ablation, overwrite)
        write_results(ablation, records)
    write_results(ablation, records, chart=True)
    return [records[v.name] for v in selected]


def _select(ablation: Ablation, only: Optional[list[str]]) -> list[Variant]:
    if not only:
        return ablation.variants
    names = [v.name for v in ablation.variants]
    for name in only:
        if name not in names:
            raise NmtError(f"--only: no variant named {name!r} in {ablation.source} "
                           f"(variants: {', '.join(names)})")
    return [v for v in ablation.variants if v.name in only]


def _previous_records(ablation: Ablation) -> dict[str, dict]:
    path = ablation.output_dir / "results.json"
    if not path.is_file():
        return {}
    try:
        return {r["name"]: r for r in json.loads(path.read_text(encoding="utf-8"))["variants"]}
    except (ValueError, KeyError, TypeError) as error:
        raise NmtError(f"{path}: not a results file of nmt ablate ({error}); move it away "
                       "to start the ablation afresh") from None


def _finished(record: Optional[dict], variant: Variant) -> bool:
    """Recorded as ok, with the same overrides, and its run directory holds the same config."""
    if not record or record["status"] != "ok" or record["overrides"] != variant.overrides:
        return False
    try:
        return load_config(Path(variant.config.training.output_dir) / "config.yaml") == \
            variant.config
    except NmtError:
        return False


def run_variant(variant: Variant, ablation: Ablation, overwrite: bool = False) -> dict:
    """Train (or resume) one variant, then score its best.pt; returns its record."""
    record: dict[str, Any] = {"name": variant.name, "overrides": variant.overrides,
                              "status": "failed", "error": None}
    run_dir = Path(variant.config.training.output_dir)
    try:
        Trainer(variant.config, overwrite=overwrite, progress_bar=False).run()
        record.update(_training_figures(run_dir / "metrics.jsonl"))
        checkpoint = load_checkpoint(run_dir / "best.pt")
        record["parameters"] = count_parameters(checkpoint.build_model())
        record["scores"] = {split: _score_split(checkpoint, prefix, run_dir / split)
                            for split, prefix in ablation.splits().items()}
        record["status"] = "ok"
    except TrainingInterrupted:
        raise
    except (NmtError, OSError) as error:
        record["error"] = str(error).splitlines()[0]
        log.error("%s failed: %s", variant.name, record["error"])
    except Exception as error:  # a bug: keep its traceback, but let the other variants run
        record["error"] = f"{type(error).__name__}: {error}".splitlines()[0]
        log.exception("%s failed", variant.name)
    return record


def _training_figures(metrics_path: Path) -> dict[str, Any]:
    """Steps, training seconds and best dev perplexity from the run's metrics.jsonl."""
    lines = [line for line in read_lines(metrics_path) if line.strip()]
    if not lines:
        raise NmtError(f"{metrics_path}: no validation record")
    records = [json.loads(line) for line in lines]
    return {"steps": records[-1]["step"], "train_seconds": records[-1]["train_seconds"],
            "best_dev_ppl": min(r["dev_ppl"] for r in records)}


def _score_split(checkpoint: Checkpoint, prefix: str, output_prefix: Path) -> dict[str, Any]:
    """Translate a raw split with each search, keep the outputs, score them."""
    data = checkpoint.config.data
    src_path, ref_path = resolve_split(prefix, data.src_lang), resolve_split(prefix, data.tgt_lang)
    sources, references = list(read_lines(src_path)), list(read_lines(ref_path))
    if len(sources) != len(references):
        raise NmtError(f"{src_path} has {len(sources)} lines but {ref_path} has "
                       f"{len(references)}")
    result: dict[str, Any] = {}
    for search, beam_size in SEARCHES.items():
        with _warnings_counted(f"{output_prefix.name} {search}"):
            hypotheses = translate(checkpoint, sources, beam_size)
        with atomic_write(f"{output_prefix}.{search}.{data.tgt_lang}") as stream:
            stream.writelines(line + "\n" for line in hypotheses)
        scores = corpus_scores(hypotheses, [references], METRICS)
        result[search] = {s.name: s.score for s in scores}
    result["signatures"] = {s.name: s.signature for s in scores}
    return result


@contextlib.contextmanager
def _warnings_counted(what: str) -> Iterator[None]:
    """One line for the translator's per-sentence warnings (an early model may warn on each)."""
    messages: list[str] = []

    def count(record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        messages.append(record.getMessage())
        return False

    translation_log = logging.getLogger("nmt.translation")
    translation_log.addFilter(count)
    try:
        yield
    finally:
        translation_log.removeFilter(count)
        if messages:
            log.warning("%s: %d translation warnings, the first: %s", what, len(messages),
                        messages[0])


def translate(checkpoint: Checkpoint, lines: list[str], beam_size: int) -> list[str]:
    """The model's translations of raw `lines`: the ablation's one call into translation."""
    translator = Translator([checkpoint], resolve_device(checkpoint.config.training.device),
                            "auto")
    return [result.hypotheses[0].text for result in translator.translate(lines, beam=beam_size)]


def write_results(ablation: Ablation, records: dict[str, dict], chart: bool = False) -> None:
    """results.json and results.md (and with `chart`, results.png) in the output directory."""
    ordered = [records[v.name] for v in ablation.variants if v.name in records]
    payload = {"ablation": ablation.source, "base": ablation.base_name,
               "budget": ablation.budget, "budget_text": ablation.budget_text(),
               "splits": ablation.splits(), "variants": ordered}
    with atomic_write(ablation.output_dir / "results.json") as stream:
        json.dump(payload, stream, indent=1)
    with atomic_write(ablation.output_dir / "results.md") as stream:
        stream.write(render_markdown(ablation, records))
    if chart:
        plot_results(ordered, "test" if ablation.test else "dev",
                     ablation.output_dir / "results.png")


def render_markdown(ablation: Ablation, records: dict[str, dict]) -> str:
    """The results table, with the budget and what was scored."""
    splits = ablation.splits()
    scored = " and ".join(f"{split} ({prefix})" for split, prefix in splits.items())
    lines = [f"# Ablation: {ablation.source}", "",
             f"Base config: {ablation.base_name}. Budget per variant, the same for all: "
             f"{ablation.budget_text()}; each config's own max_epochs and early stopping "
             f"apply too. Scores: best.pt (lowest dev perplexity) on {scored}, greedy / "
             "beam 5, sacreBLEU BLEU and chrF.", ""]
    header = ["variant", "overrides", "status", "steps", "train s", "parameters",
              "best dev ppl"] + [f"{split} {metric} greedy / beam 5" for split in splits
                                 for metric in ("BLEU", "chrF")]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    signatures: dict[str, str] = {}
    for variant in ablation.variants:
        record = records.get(variant.name)
        cells = [variant.name, _describe(variant.overrides)]
        if record is None:
            cells += ["not run"] + [""] * (len(header) - 3)
        elif record["status"] != "ok":
            cells += [f"failed: {record['error']}"] + [""] * (len(header) - 3)
        else:
            cells += ["ok", f"{record['steps']:,}", f"{record['train_seconds']:,.0f}",
                      f"{record['parameters']:,}", f"{record['best_dev_ppl']:.2f}"]
            for split in splits:
                scores = record["scores"][split]
                signatures.update(scores["signatures"])
                cells += [f"{scores['greedy'][m]:.2f} / {scores['beam5'][m]:.2f}"
                          for m in METRICS]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    if signatures:
        lines += [""] + [f"{name.upper() if name == 'bleu' else 'chrF'} signature: "
                         f"`{signature}`" for name, signature in signatures.items()]
    return "\n".join(lines) + "\n"


def plot_results(records: list[dict], split: str, path: Path) -> None:
    """A bar chart of each variant's BLEU on `split`, greedy and beam 5 (needs matplotlib)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        log.warning("results.png skipped: matplotlib is not installed (pip install nmt[plot])")
        return
    ok = [r["status"] == "ok" for r in records]
    names = [r["name"] + ("" if good else " (failed)") for r, good in zip(records, ok)]
    figure = Figure(figsize=(7, 1.2 + 0.4 * len(records)))
    axes = figure.subplots()
    highest = 1.0
    for offset, search, label in ((-0.2, "greedy", "greedy"), (0.2, "beam5", "beam 5")):
        values = [r["scores"][split][search]["bleu"] if good else 0.0
                  for r, good in zip(records, ok)]
        bars = axes.barh([i + offset for i in range(len(records))], values, height=0.4,
                         label=label)
        axes.bar_label(bars, [f"{v:.1f}" if good else "" for v, good in zip(values, ok)],
                       padding=2, fontsize=8)
        highest = max(highest, *values)
    axes.set_xlim(0, highest * 1.15)  # room for the labels
    axes.set_yticks(range(len(records)), names)
    axes.invert_yaxis()  # the first variant on top, as in the table
    axes.set_xlabel(f"{split} BLEU")
    axes.legend()
    figure.tight_layout()
    with atomic_write(path, "wb") as stream:
        figure.savefig(stream, format="png", dpi=100)


def _describe(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in overrides.items()) \
        or "(none)"
