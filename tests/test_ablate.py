"""`nmt ablate` on the shipped sample: training, scoring, resuming, failures, file errors."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, write_config
from nmt.ablate import plot_results
from nmt.cli import main


def ablation_file(tmp: Path, **top) -> Path:
    """An ablation of a tiny sample model (20 steps per variant) with small dev and test sets.

    `top` replaces keys of the file (variants: one variant, the base unchanged).
    """
    for split, lines in (("dev", 30), ("test", 20)):
        for lang in ("en", "de"):
            text = (REPO / f"data/{split}.{lang}").read_text(encoding="utf-8")
            (tmp / f"{split}.{lang}").write_text("".join(text.splitlines(True)[:lines]),
                                                 encoding="utf-8")
    base = write_config(tmp / "base.yaml", tmp, data={"dev": str(tmp / "dev"), "test": None},
                        training={"validate_every": 10, "validation_bleu": False})
    content = {"base": str(base), "budget": {"max_steps": 20}, "output_dir": str(tmp / "out"),
               "test": str(tmp / "test"), "variants": [{"name": "full"}]}
    content.update(top)
    path = tmp / "ablation.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return path


class InterruptAfter(logging.Handler):
    """Sends this process SIGINT at the first log record after `path` appears.

    Training saves last.pt at a validation and logs afterwards, so this stops a
    run part-way, the way Ctrl-C would.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path, self.sent = path, False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.sent and self.path.exists():
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


def results(out: Path) -> dict[str, dict]:
    payload = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert payload["budget"] == {"max_steps": 20}
    return {record["name"]: record for record in payload["variants"]}


def test_ablation_keeps_finished_variants_resumes_interrupted_ones_and_records_failures(tmp_path):
    path = ablation_file(tmp_path, variants=[
        {"name": "full"},
        {"name": "broken", "overrides": {"training.device": "cpu", "training.precision": "fp16"}},
        {"name": "unidirectional", "overrides": {"model.bidirectional": False}},
    ])
    out = tmp_path / "out"
    assert main(["-q", "ablate", str(path), "--only", "full"]) == 0
    full = results(out)["full"]
    assert full["status"] == "ok" and full["steps"] == 20 and full["parameters"] > 0
    for split in ("dev", "test"):
        for search in ("greedy", "beam5"):
            assert set(full["scores"][split][search]) == {"bleu", "chrf"}
            assert len((out / "full" / f"{split}.{search}.de").read_text().splitlines()) == \
                (30 if split == "dev" else 20)
    table = (out / "results.md").read_text(encoding="utf-8")
    assert "max_steps 20" in table and "| unidirectional | model.bidirectional=false | not run" \
        in table

    # Ctrl-C during the third variant: the failure before it is recorded, training stops.
    interrupt = InterruptAfter(out / "unidirectional" / "last.pt")
    logging.getLogger("nmt").addHandler(interrupt)
    try:
        assert main(["-q", "ablate", str(path)]) == 128 + signal.SIGINT
    finally:
        logging.getLogger("nmt").removeHandler(interrupt)
    assert interrupt.sent and set(results(out)) == {"full", "broken"}
    metrics = out / "unidirectional" / "metrics.jsonl"
    first_validation = metrics.read_text().splitlines()[0]
    full_files = {p: p.stat().st_mtime_ns for p in (out / "full").iterdir()}

    assert main(["-q", "ablate", str(path)]) == 1  # `broken` fails again
    records = results(out)
    assert records["full"] == full
    assert {p: p.stat().st_mtime_ns for p in (out / "full").iterdir()} == full_files
    assert records["unidirectional"]["status"] == "ok"
    assert records["unidirectional"]["steps"] == 20
    # Resumed, not started again: the record of its first validation is the old one.
    assert metrics.read_text().splitlines()[0] == first_validation
    assert records["unidirectional"]["parameters"] < full["parameters"]
    assert records["broken"]["status"] == "failed"
    assert "fp16 needs a CUDA GPU" in records["broken"]["error"]
    table = (out / "results.md").read_text(encoding="utf-8")
    assert "| broken | training.device=\"cpu\", training.precision=\"fp16\" | failed: " \
           "training.precision fp16 needs a CUDA GPU" in table
    if importlib.util.find_spec("matplotlib"):
        assert (out / "results.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("change, expected", [
    ({"variants": [{"name": "uni", "overrides": {"model.bidirectinal": False}}]},
     "variant uni: model.bidirectinal: unknown key (expected one of: attention,"),
    ({"variants": [{"name": "uni", "overrides": {"bidirectional": False}}]},
     "variant uni: bidirectional: expected a dotted key SECTION.KEY"),
    ({"variants": [{"name": "uni", "overrides": {"model.dropout": 2}}]},
     "variant uni: model.dropout: must be in [0, 1), got 2.0"),
    ({"variants": [{"name": "shared", "overrides": {"model.share_encoder_decoder": True}}]},
     "variant shared: model.share_encoder_decoder: needs encoder_hidden_size = "
     "decoder_hidden_size (now 32, 48)"),
    ({"variants": [{"name": "long", "overrides": {"training.max_steps": 50}}]},
     "variant long: training.max_steps: set by the ablation"),
    ({"variants": [{"name": "big", "overrides": {"sentencepiece.vocab_size": 500}}]},
     "variant big: sentencepiece.vocab_size: variants share the base's data"),
    ({"variants": [{"name": "a"}, {"name": "a"}]}, "variant a: the name is used twice"),
    ({"variants": [{"name": "a/b"}]}, "variants: entry 1: name: expected letters"),
    ({"budget": {"max_steps": 0}}, "budget.max_steps: expected a positive integer, got 0"),
    ({"budget": {"epochs": 3}}, "budget: expected a mapping with max_steps and/or max_minutes"),
    ({"variant": []}, "variant: unknown key (expected one of: base, budget,"),
    ({"base": 3}, "base: expected a config file path or a config mapping"),
])
def test_ablation_file_errors_are_one_line(tmp_path, capsys, change, expected):
    path = ablation_file(tmp_path, **change)
    assert main(["-q", "ablate", str(path)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"nmt ablate: error: {path}: ")
    assert expected in error
    assert not (tmp_path / "out").exists()  # nothing trained


def test_only_names_an_existing_variant(tmp_path, capsys):
    path = ablation_file(tmp_path)
    assert main(["-q", "ablate", str(path), "--only", "ful"]) == 1
    assert capsys.readouterr().err == (f"nmt ablate: error: --only: no variant named 'ful' in "
                                       f"{path} (variants: full)\n")


RECORDS = [{"name": "full", "status": "ok",
            "scores": {"dev": {"greedy": {"bleu": 30.5}, "beam5": {"bleu": 31.2}}}},
           {"name": "broken", "status": "failed", "error": "no GPU"}]


def test_chart_without_matplotlib_is_skipped_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with caplog.at_level(logging.WARNING, logger="nmt"):
        plot_results(RECORDS, "dev", tmp_path / "results.png")
    assert not (tmp_path / "results.png").exists()
    assert [r.getMessage() for r in caplog.records] == [
        "results.png skipped: matplotlib is not installed (pip install nmt[plot])"]


def test_chart_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    plot_results(RECORDS, "dev", tmp_path / "results.png")
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")
