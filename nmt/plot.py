"""Pictures: the attention of one translation as a heatmap, and a run's training curves.

matplotlib is an optional extra (`pip install 'nmt[plot]'`), imported only here.
Figures are built with its object API (`Figure`, rendered by the Agg or SVG
canvas), never pyplot: no display is needed and no global backend is changed.
Files are PNG or SVG by their suffix and written atomically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from nmt.errors import NmtError
from nmt.textio import atomic_write, read_lines

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = {".png": "png", ".svg": "svg"}
EOS_LABEL = "</s>"
# metrics.jsonl key, panel title, log scale
CURVES = [("train_loss", "training loss (per token)", False), ("dev_ppl", "dev perplexity", False),
          ("dev_bleu", "dev BLEU", False), ("lr", "learning rate", True)]


def plot_attention(output: str | Path, checkpoints: Sequence[str | Path] = (),
                   text: Optional[str] = None, jsonl: Optional[str | Path] = None,
                   line: int = 1, hypothesis: int = 1, beam: Optional[int] = None,
                   device: str = "auto") -> None:
    """Draw the attention of hypothesis `hypothesis` (1 = best) of one translation.

    Either translate `text` with `checkpoints`, or take line `line` (from 1) of
    `jsonl`, the output of `nmt translate --output-format jsonl --attention`.
    """
    file_format = _file_format(output)
    _figure_class()  # fail before loading a model
    if hypothesis < 1:
        raise NmtError(f"--hypothesis must be at least 1, got {hypothesis}")
    if jsonl is not None:
        where, record = f"{jsonl}:{line}", _jsonl_record(jsonl, line)
    else:
        where, record = "--text", _translate(checkpoints, text or "", hypothesis, beam, device)
    source_pieces, target_pieces, attention = _attention_of(record, hypothesis, where)
    save_figure(attention_figure(source_pieces, target_pieces, attention), output, file_format)


def plot_curves(run_dir: str | Path, output: str | Path) -> None:
    """Draw training loss, dev perplexity, dev BLEU and learning rate of a run."""
    file_format = _file_format(output)
    _figure_class()  # fail before reading anything
    path = Path(run_dir) / "metrics.jsonl"
    records = []
    for number, text in enumerate(read_lines(path), start=1):
        if text.strip():
            records.append(_json_object(text, f"{path}:{number}"))
    if not records:
        raise NmtError(f"{path}: no validation records yet, nothing to plot")
    save_figure(curves_figure(records), output, file_format)


def attention_figure(source_pieces: Sequence[str], target_pieces: Sequence[str],
                     attention: Sequence[Sequence[float]]) -> "Figure":
    """Heatmap: one row per target piece and EOS, one column per source piece."""
    rows, columns = len(target_pieces) + 1, len(source_pieces)
    # About a quarter inch per piece, shrunk for long sentences so a figure stays
    # within 30 inches (3,000 pixels at 100 dpi) a side.
    cell = min(0.25, 30 / max(rows, columns))
    font_size = max(2.0, min(9.0, cell * 72 * 0.8))
    figure = _figure_class()(figsize=(2.5 + cell * columns, 1.5 + cell * rows),
                             layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(attention, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto",
                        interpolation="nearest")
    axes.set_xticks(range(columns), list(source_pieces), rotation=90, fontsize=font_size)
    axes.set_yticks(range(rows), [*target_pieces, EOS_LABEL], fontsize=font_size)
    axes.set_xlabel("source pieces")
    axes.set_ylabel("target pieces")
    figure.colorbar(image, ax=axes, label="attention weight", shrink=0.8)
    return figure


def curves_figure(records: Sequence[dict[str, Any]]) -> "Figure":
    """Four small panels against the step; points missing from a record are skipped."""
    figure = _figure_class()(figsize=(9, 6), layout="constrained")
    for axes, (key, title, log_scale) in zip(figure.subplots(2, 2).flat, CURVES):
        points = [(r.get("step"), r.get(key)) for r in records]
        points = [(s, v) for s, v in points if _is_number(s) and _is_number(v)]
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("step", fontsize=9)
        axes.tick_params(labelsize=8)
        if not points:
            axes.text(0.5, 0.5, "not recorded", ha="center", va="center",
                      transform=axes.transAxes, color="grey")
            continue
        steps, values = zip(*points)
        axes.plot(steps, values, marker="o", markersize=3)
        if log_scale and min(values) > 0:
            axes.set_yscale("log")
        axes.grid(alpha=0.3)
    return figure


def save_figure(figure: "Figure", path: str | Path, file_format: str) -> None:
    with atomic_write(path, "wb") as stream:
        figure.savefig(stream, format=file_format, dpi=100)


def _file_format(path: str | Path) -> str:
    suffix = Path(path).suffix
    if suffix.lower() not in FORMATS:
        raise NmtError(f"{path}: cannot write {suffix or 'a file without a suffix'}; "
                       "name it .png or .svg")
    return FORMATS[suffix.lower()]


def _figure_class() -> type:
    try:
        import matplotlib  # noqa: F401  (its absence is the error below)
        from matplotlib.figure import Figure
    except ImportError:
        raise NmtError("plotting needs matplotlib: pip install 'nmt[plot]'") from None
    return Figure


def _translate(checkpoints: Sequence[str | Path], text: str, hypothesis: int,
               beam: Optional[int], device: str) -> dict[str, Any]:
    from nmt.translation import Translator  # PyTorch loads only when a model is needed

    if not checkpoints:
        raise NmtError("--text needs a model: give --checkpoint")
    translator = Translator.load(checkpoints, device)
    beam_size = translator.options({"beam_size": "--beam"}, beam_size=beam).beam_size
    if hypothesis > beam_size:
        raise NmtError(f"--hypothesis {hypothesis}: a beam of {beam_size} keeps only "
                       f"{beam_size} hypotheses (raise --beam)")
    [translation] = translator.translate([text], beam=beam, n_best=hypothesis, attention=True,
                                         cut_long_lines=False)
    return translation.to_dict()


def _jsonl_record(path: str | Path, line: int) -> dict[str, Any]:
    if line < 1:
        raise NmtError(f"--line must be at least 1, got {line}")
    count = 0
    for count, text in enumerate(read_lines(path), start=1):
        if count == line:
            if not text.strip():
                raise NmtError(f"{path}:{line}: empty line, nothing to plot")
            return _json_object(text, f"{path}:{line}")
    raise NmtError(f"--line {line}: {path} has {count} line{'' if count == 1 else 's'}")


def _attention_of(record: dict[str, Any], hypothesis: int, where: str
                  ) -> tuple[list[str], list[str], list[list[float]]]:
    """Source pieces, target pieces and attention matrix of one hypothesis, checked."""
    source_pieces, hypotheses = record.get("source_pieces"), record.get("hypotheses")
    if not isinstance(source_pieces, list) or not isinstance(hypotheses, list):
        raise NmtError(f"{where}: no source_pieces or hypotheses; expected a line of "
                       "nmt translate --output-format jsonl --attention")
    if not source_pieces:
        raise NmtError(f"{where}: the source is empty, nothing to plot")
    if not 1 <= hypothesis <= len(hypotheses):
        raise NmtError(f"--hypothesis {hypothesis}: {where} has {len(hypotheses)} "
                       f"hypothes{'is' if len(hypotheses) == 1 else 'es'}")
    chosen = hypotheses[hypothesis - 1]
    if "attention" not in chosen:
        raise NmtError(f"{where}: no attention in this line; translate with "
                       "--output-format jsonl --attention")
    pieces, attention = chosen.get("pieces", []), chosen["attention"]
    shape_ok = (len(attention) == len(pieces) + 1
                and all(len(row) == len(source_pieces) for row in attention))
    if not shape_ok:
        raise NmtError(f"{where}: the attention matrix is not (target pieces + 1) x "
                       f"source pieces = {len(pieces) + 1} x {len(source_pieces)}")
    return source_pieces, pieces, attention


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise NmtError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise NmtError(f"{where}: expected a JSON object")
    return record


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
