"""Looking inside a translation: n-best, JSONL with attention, forced decoding, streaming,
ensembles and the Python API, on the sample model."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading

import pytest
import torch

from conftest import REPO
from nmt import Translator
from nmt.cli import main
from nmt.data import make_batch
from nmt.errors import NmtError
from nmt.model import token_nll
from nmt.preprocess import load_vocabularies
from nmt.data import ParallelData

SENTENCES = ["A young teacher is reading a book.", "", "Three cats are running in the snow."]


@pytest.fixture(scope="module")
def checkpoint(sample_run) -> str:
    return str(sample_run / "run/best.pt")


@pytest.fixture(scope="module")
def translator(checkpoint) -> Translator:
    return Translator.load(checkpoint, device="cpu", precision="fp32")


def run_translate(checkpoint, tmp_path, *args, lines=SENTENCES) -> list[str]:
    source, output = tmp_path / "in.en", tmp_path / "out"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["-q", "translate", "-c", checkpoint, "-i", str(source), "-o", str(output),
                 "--precision", "fp32", *args]) == 0
    return output.read_text(encoding="utf-8").splitlines()


def test_python_api_returns_typed_results(translator):
    results = translator.translate(SENTENCES, beam=4, n_best=2, attention=True)
    assert [r.source for r in results] == SENTENCES
    first = results[0]
    assert len(first.hypotheses) == 2 and first.hypotheses[0].score >= first.hypotheses[1].score
    best = first.hypotheses[0]
    assert best.text and len(best.piece_logprobs) == len(best.pieces) + 1
    assert len(best.attention) == len(best.pieces) + 1
    assert all(len(row) == len(first.source_pieces) for row in best.attention)
    assert all(abs(sum(row) - 1) < 1e-4 for row in best.attention)
    assert best.logprob == pytest.approx(sum(best.piece_logprobs) / len(best.piece_logprobs))
    empty = results[1].hypotheses
    assert len(empty) == 1 and empty[0].text == "" and empty[0].attention == []


def test_n_best_one_text_output_is_the_plain_translation(checkpoint, tmp_path, translator):
    plain = run_translate(checkpoint, tmp_path, "--beam", "3")
    assert plain == run_translate(checkpoint, tmp_path, "--beam", "3", "--n-best", "1")
    expected = [r.hypotheses[0].text for r in translator.translate(SENTENCES, beam=3)]
    assert plain == expected


def test_n_best_text_output_is_moses_format_best_first(checkpoint, tmp_path):
    lines = run_translate(checkpoint, tmp_path, "--beam", "4", "--n-best", "3")
    fields = [line.split(" ||| ") for line in lines]
    assert [int(f[0]) for f in fields] == [0, 0, 0, 1, 2, 2, 2]  # an empty line: one entry
    scores = [float(f[3]) for f in fields[:3]]
    assert scores == sorted(scores, reverse=True)
    assert all(f[2].startswith("logprob=") for f in fields)


def test_jsonl_output_has_the_documented_keys_and_alignment(checkpoint, tmp_path):
    lines = run_translate(checkpoint, tmp_path, "--beam", "3", "--n-best", "2",
                          "--output-format", "jsonl", "--attention")
    records = [json.loads(line) for line in lines]
    assert [r["source"] for r in records] == SENTENCES
    for record in records:
        for h in record["hypotheses"]:
            assert {"text", "score", "logprob", "pieces", "piece_logprobs", "attention",
                    "alignment"} <= set(h)
    best = records[0]["hypotheses"][0]
    pairs = [tuple(map(int, pair.split("-"))) for pair in best["alignment"].split()]
    source_words, target_words = len(SENTENCES[0].split()), len(best["text"].split())
    assert [j for _, j in pairs] == list(range(target_words))  # one pair per target word
    assert all(0 <= i < source_words for i, _ in pairs)


def test_forced_decoding_score_is_the_training_loss(sample_run, translator):
    prepared = sample_run / "prepared"
    src_vocab, tgt_vocab = load_vocabularies(prepared, True)
    dev = ParallelData.load(prepared, "dev", src_vocab, tgt_vocab)
    batch = make_batch(dev, [0])
    model = translator.models[0]
    with torch.inference_mode():
        loss = token_nll(model(batch.src, batch.src_lengths, batch.tgt_in), batch.tgt_out).item()
    source = src_vocab.decode(dev.src(0).tolist())
    target = tgt_vocab.decode(dev.tgt(0).tolist())
    [result] = translator.score([source], [target])
    best = result.hypotheses[0]
    assert best.pieces == tgt_vocab.pieces(dev.tgt(0).tolist())
    assert -sum(best.piece_logprobs) == pytest.approx(loss, rel=1e-5)


def test_force_target_cli_and_its_line_count_check(checkpoint, tmp_path):
    targets = tmp_path / "targets.de"
    targets.write_text("Ein junger Lehrer liest ein Buch.\n\nDrei Katzen.\n", encoding="utf-8")
    lines = run_translate(checkpoint, tmp_path, "--force-target", str(targets))
    assert len(lines) == 3
    total, perplexity = map(float, lines[0].split("\t"))
    assert total < 0 and perplexity > 1
    targets.write_text("only one line\n", encoding="utf-8")
    source = tmp_path / "in.en"
    assert main(["-q", "translate", "-c", checkpoint, "-i", str(source), "-o",
                 str(tmp_path / "forced"), "--force-target", str(targets)]) == 1
    assert not (tmp_path / "forced").exists()


@pytest.mark.parametrize("args,message", [
    (["--beam", "2", "--n-best", "3"], "--n-best: must be in [1, --beam = 2], got 3"),
    (["--attention"], "--attention needs --output-format jsonl"),
])
def test_bad_inspection_options_are_one_line_errors(checkpoint, tmp_path, capsys, args, message):
    output = tmp_path / "out"
    assert main(["-q", "translate", "-c", checkpoint, "-i", str(REPO / "data/test.en"),
                 "-o", str(output), *args]) == 1
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not output.exists()


@pytest.mark.parametrize("options,message", [
    ({"beam": 0}, "beam: must be at least 1, got 0"),
    ({"beam": 2, "n_best": 3}, "n_best: must be in [1, beam = 2], got 3"),
    ({"alpha": -0.5}, "alpha: must be >= 0, got -0.5"),
    ({"batch_size": 0}, "batch_size: must be at least 1, got 0"),
])
def test_python_api_errors_name_its_arguments(translator, options, message):
    with pytest.raises(NmtError) as error:
        translator.translate(["A dog."], **options)
    assert str(error.value) == message


def test_jsonl_refuses_a_line_over_the_piece_limit(checkpoint, tmp_path, capsys):
    lines = ["A dog.", "dog " * 1200]
    assert main(["-q", "translate", "-c", checkpoint, "-i", str(tmp_path / "x"),
                 "-o", str(tmp_path / "y")]) == 1  # missing input: one line too
    (tmp_path / "long.en").write_text("\n".join(lines) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["-q", "translate", "-c", checkpoint, "-i", str(tmp_path / "long.en"), "-o",
                 str(tmp_path / "out"), "--output-format", "jsonl"]) == 1
    assert "input line 2: " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_ensemble_of_a_checkpoint_with_itself_translates_like_it(checkpoint, tmp_path):
    single = run_translate(checkpoint, tmp_path, "--beam", "3", "--output-format", "jsonl")
    double = run_translate(checkpoint, tmp_path, "-c", checkpoint, "--beam", "3",
                           "--output-format", "jsonl")
    for a, b in zip(map(json.loads, single), map(json.loads, double)):
        assert a["hypotheses"][0]["text"] == b["hypotheses"][0]["text"]
        assert a["hypotheses"][0]["score"] == pytest.approx(b["hypotheses"][0]["score"],
                                                            abs=1e-4)


def test_piped_input_is_translated_line_by_line(checkpoint):
    """Write one line, read its translation back, and only then write the next."""
    process = subprocess.Popen([sys.executable, "-m", "nmt", "-q", "translate", "-c", checkpoint,
                                "--beam", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=REPO)
    replies: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [replies.put(line) for line in process.stdout],
                     daemon=True).start()
    try:
        answers = []
        for sentence in SENTENCES:
            process.stdin.write(sentence + "\n")
            process.stdin.flush()
            answers.append(replies.get(timeout=60).rstrip("\n"))  # arrives before the next line
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    assert answers[1] == "" and answers[0] and answers[2]
