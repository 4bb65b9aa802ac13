"""`nmt plot`: attention heatmaps and training curves, and their error paths."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import one_line_error
from nmt.cli import main
from nmt.plot import attention_figure, curves_figure
from nmt.translation import Translator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LINES = ["A dog is running in the park.", "The woman is reading a book."]


@pytest.fixture(scope="module")
def jsonl(sample_run, tmp_path_factory):
    """`nmt translate --output-format jsonl --attention --n-best 2` of LINES."""
    tmp = tmp_path_factory.mktemp("plot")
    source = tmp / "in.en"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    output = tmp / "out.jsonl"
    assert main(["-q", "translate", "-c", str(sample_run / "run/best.pt"), "-i", str(source),
                 "-o", str(output), "--output-format", "jsonl", "--attention",
                 "--n-best", "2"]) == 0
    return output


def test_attention_from_a_checkpoint_equals_the_plot_of_its_jsonl_line(sample_run, jsonl,
                                                                       tmp_path):
    from_model, from_jsonl = tmp_path / "model.png", tmp_path / "jsonl.png"
    assert main(["-q", "plot", "attention", "-c", str(sample_run / "run/best.pt"),
                 "--text", LINES[1], "-o", str(from_model)]) == 0
    assert main(["-q", "plot", "attention", "--jsonl", str(jsonl), "--line", "2",
                 "-o", str(from_jsonl)]) == 0
    assert from_model.read_bytes().startswith(PNG_SIGNATURE)
    assert from_model.read_bytes() == from_jsonl.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jsonl.png", "model.png"]  # no temp


def test_attention_svg_of_the_second_hypothesis(jsonl, tmp_path):
    output = tmp_path / "attention.SVG"
    assert main(["-q", "plot", "attention", "--jsonl", str(jsonl), "--hypothesis", "2",
                 "-o", str(output)]) == 0
    assert "<svg" in output.read_text(encoding="utf-8")


def test_attention_figure_labels_its_axes_with_the_pieces(sample_run):
    translator = Translator.load(sample_run / "run/best.pt", device="cpu")
    [translation] = translator.translate([LINES[0]], beam=3, attention=True)
    best = translation.hypotheses[0]
    axes = attention_figure(translation.source_pieces, best.pieces, best.attention).axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == translation.source_pieces
    assert [t.get_text() for t in axes.get_yticklabels()] == [*best.pieces, "</s>"]
    assert axes.images[0].get_array().tolist() == best.attention


def test_curves_png_and_svg(sample_run, tmp_path):
    for name in ("curves.png", "curves.svg"):
        assert main(["-q", "plot", "curves", str(sample_run / "run"),
                     "-o", str(tmp_path / name)]) == 0
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "<svg" in (tmp_path / "curves.svg").read_text(encoding="utf-8")


def test_curves_skip_missing_and_null_values(tmp_path):
    records = [{"step": 100, "train_loss": 5.0, "dev_ppl": 90.0, "dev_bleu": None, "lr": 1e-3,
                "new_key": [1]},
               {"step": 200, "train_loss": 4.0, "dev_bleu": None},
               {"train_loss": 3.0, "dev_ppl": 40.0}]
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records) + "\n", encoding="utf-8")
    assert main(["-q", "plot", "curves", str(tmp_path), "-o", str(tmp_path / "c.png")]) == 0
    loss, ppl, bleu, lr = curves_figure(records).axes
    assert loss.lines[0].get_xydata().tolist() == [[100, 5.0], [200, 4.0]]
    assert ppl.lines[0].get_xydata().tolist() == [[100, 90.0]]
    assert not bleu.lines and bleu.texts[0].get_text() == "not recorded"
    assert lr.get_yscale() == "log"


def test_missing_matplotlib_is_a_one_line_error(sample_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` then fails
    output = tmp_path / "curves.png"
    assert main(["plot", "curves", str(sample_run / "run"), "-o", str(output)]) == 1
    assert one_line_error(capsys) == ("nmt plot: error: plotting needs matplotlib: "
                                      "pip install 'nmt[plot]'")
    assert not output.exists()


@pytest.mark.parametrize("text, message", [
    ("", "--text: the source is empty, nothing to plot"),
    (" \t\x07", "--text: the source is empty, nothing to plot"),
    ("dog " * 1100, "input line 1: 1100 pieces, over the limit of 1000; split the line"),
])
def test_attention_rejects_bad_text(sample_run, tmp_path, capsys, text, message):
    output = tmp_path / "a.png"
    assert main(["plot", "attention", "-c", str(sample_run / "run/best.pt"), "--text", text,
                 "-o", str(output)]) == 1
    assert one_line_error(capsys) == f"nmt plot: error: {message}"
    assert not output.exists()


def test_attention_rejects_bad_options(sample_run, jsonl, tmp_path, capsys):
    checkpoint = str(sample_run / "run/best.pt")
    cases = [
        (["--jsonl", str(jsonl), "-o", str(tmp_path / "a.jpg")],
         f"{tmp_path / 'a.jpg'}: cannot write .jpg; name it .png or .svg"),
        (["--jsonl", str(jsonl), "--line", "3", "-o", str(tmp_path / "a.png")],
         f"--line 3: {jsonl} has 2 lines"),
        (["--jsonl", str(jsonl), "--hypothesis", "3", "-o", str(tmp_path / "a.png")],
         f"--hypothesis 3: {jsonl}:1 has 2 hypotheses"),
        (["-c", checkpoint, "--text", "A dog.", "--beam", "2", "--hypothesis", "3",
          "-o", str(tmp_path / "a.png")],
         "--hypothesis 3: a beam of 2 keeps only 2 hypotheses (raise --beam)"),
        (["-c", checkpoint, "--text", "A dog.", "--beam", "0", "-o", str(tmp_path / "a.png")],
         "--beam: must be at least 1, got 0"),
        (["--text", "A dog.", "-o", str(tmp_path / "a.png")],
         "--text needs a model: give --checkpoint"),
    ]
    for args, message in cases:
        assert main(["plot", "attention", *args]) == 1
        assert one_line_error(capsys) == f"nmt plot: error: {message}"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("content, message", [
    ("\n", "{path}:1: empty line, nothing to plot"),
    ("{not json\n", "{path}:1: not valid JSON (Expecting property name enclosed in double "
                    "quotes)"),
    ('{"source": "", "source_pieces": [], "hypotheses": [{"text": ""}]}\n',
     "{path}:1: the source is empty, nothing to plot"),
    ('{"source": "a", "source_pieces": ["\\u2581a"], "hypotheses": [{"text": "b", '
     '"pieces": ["\\u2581b"]}]}\n',
     "{path}:1: no attention in this line; translate with --output-format jsonl --attention"),
])
def test_attention_rejects_bad_jsonl_lines(tmp_path, capsys, content, message):
    path = tmp_path / "t.jsonl"
    path.write_text(content, encoding="utf-8")
    assert main(["plot", "attention", "--jsonl", str(path), "-o", str(tmp_path / "a.png")]) == 1
    assert one_line_error(capsys) == "nmt plot: error: " + message.format(path=path)
    assert not (tmp_path / "a.png").exists()


@pytest.mark.parametrize("content", [None, "", "\n"])
def test_curves_need_metrics(tmp_path, capsys, content):
    path = tmp_path / "metrics.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["plot", "curves", str(tmp_path), "-o", str(tmp_path / "c.png")]) == 1
    expected = "file not found" if content is None else "no validation records yet, nothing to plot"
    assert one_line_error(capsys) == f"nmt plot: error: {path}: {expected}"
    assert not (tmp_path / "c.png").exists()
