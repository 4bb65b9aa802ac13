"""The command line end to end on the shipped sample, and its error paths."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import REPO, assert_equal_state, one_line_error, run_config, write_config
from nmt.checkpoint import load_checkpoint
from nmt.cli import main


def run_module(*args, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "nmt", *args], input=stdin, text=True,
                          capture_output=True, cwd=REPO, timeout=300)


def test_help_documents_every_command():
    result = run_module("--help")
    assert result.returncode == 0
    for command in ("preprocess", "train", "translate", "average", "score", "info",
                    "ablate", "serve", "download", "plot"):
        assert command in result.stdout
        sub = run_module(command, "--help")
        assert sub.returncode == 0 and "usage: nmt " + command in sub.stdout


def test_train_writes_checkpoints_log_and_metrics(sample_run):
    run = sample_run / "run"
    for name in ("best.pt", "last.pt", "train.log", "metrics.jsonl", "config.yaml"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [75, 150]
    assert all(r["dev_ppl"] > 1 and r["train_tok_per_s"] > 0 for r in records)
    assert records[1]["dev_ppl"] < records[0]["dev_ppl"]
    stats = json.loads((sample_run / "prepared" / "stats.json").read_text())
    assert stats["train"]["pairs"] == 3000 and stats["dev"]["pairs"] == 200


def test_translate_gives_one_line_per_input_line_in_order(sample_run, tmp_path, capsys):
    lines = ["A dog is running in the park.", "", "   ", "\t\x07",
             "The woman is reading a book.", "A dog is running in the park."]
    source = tmp_path / "in.en"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "out.de"
    for beam in ("1", "3"):
        assert main(["-q", "translate", "-c", str(sample_run / "run/best.pt"), "-i", str(source),
                     "-o", str(output), "--beam", beam, "--batch-size", "2"]) == 0
        result = output.read_text(encoding="utf-8").split("\n")
        assert len(result) == len(lines) + 1 and result[-1] == ""
        assert result[1:4] == ["", "", ""]
        assert result[0] and result[4] and result[0] == result[5]
    assert not list(tmp_path.glob(".out.de.*"))  # no temporary file left behind


def test_translate_reads_stdin_and_gzip(sample_run, tmp_path):
    checkpoint = str(sample_run / "run/best.pt")
    result = run_module("-q", "translate", "-c", checkpoint, "--beam", "2",
                        stdin="A man is walking.\n\nTwo cats are sleeping.\n")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split("\n")) == 4 and result.stdout.split("\n")[1] == ""
    packed = tmp_path / "in.en.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as stream:
        stream.write("A man is walking.\nTwo cats are sleeping.\n")
    out = tmp_path / "out.de"
    assert main(["-q", "translate", "-c", checkpoint, "-i", str(packed), "-o", str(out)]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2


def test_score_prints_signatures_and_json(tmp_path, capsys):
    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    hyp.write_text("Ein Hund läuft im Park.\nZwei Katzen schlafen.\n", encoding="utf-8")
    ref.write_text("Ein Hund läuft im Park.\nZwei Katzen schlafen.\n", encoding="utf-8")
    assert main(["score", "--ref", str(ref), "--hyp", str(hyp)]) == 0
    text = capsys.readouterr().out
    assert "BLEU = 100.00" in text and "nrefs:1|case:mixed|eff:no|tok:13a" in text
    assert "chrF2" in text and "TER" in text
    assert main(["score", "--ref", str(ref), "--hyp", str(hyp), "--json"]) == 0
    scores = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert scores["bleu"]["score"] == 100.0 and scores["ter"]["score"] == 0.0
    assert scores["chrf"]["signature"].startswith("nrefs:1")


def test_config_errors_name_the_key(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main(["preprocess", str(missing)]) == 1
    assert str(missing) in one_line_error(capsys)
    config = write_config(tmp_path / "c.yaml", tmp_path, model={"dropuot": 0.1})
    assert main(["train", str(config)]) == 1
    assert "model.dropuot: unknown key" in one_line_error(capsys)
    config = write_config(tmp_path / "c.yaml", tmp_path, training={"batch_tokens": "many"})
    assert main(["train", str(config)]) == 1
    assert "training.batch_tokens: expected an integer" in one_line_error(capsys)
    config = write_config(tmp_path / "c.yaml", tmp_path, model={"dropout": 1.5})
    assert main(["train", str(config)]) == 1
    assert "model.dropout: must be in [0, 1)" in one_line_error(capsys)
    config = write_config(tmp_path / "c.yaml", tmp_path, data={"train": str(tmp_path / "x")})
    assert main(["preprocess", str(config)]) == 1
    assert "x.en: corpus file not found" in one_line_error(capsys)
    assert main(["train", str(write_config(tmp_path / "c.yaml", tmp_path))]) == 1
    assert "run `nmt preprocess CONFIG` first" in one_line_error(capsys)


def test_mismatched_line_counts_name_both_files(tmp_path, capsys):
    (tmp_path / "bad.en").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "bad.de").write_text("a\nb\n", encoding="utf-8")
    config = write_config(tmp_path / "c.yaml", tmp_path, data={"train": str(tmp_path / "bad")})
    assert main(["preprocess", str(config)]) == 1
    err = one_line_error(capsys)
    assert "bad.en has 3 lines but" in err and "bad.de has 2" in err


def test_invalid_utf8_names_file_and_line(sample_run, tmp_path, capsys):
    source = tmp_path / "in.en"
    source.write_bytes(b"A dog.\nA \xff cat.\n")
    output = tmp_path / "out.de"
    output.write_text("keep me\n", encoding="utf-8")
    assert main(["translate", "-c", str(sample_run / "run/best.pt"), "-i", str(source),
                 "-o", str(output)]) == 1
    assert f"{source}:2: invalid UTF-8" in one_line_error(capsys)
    assert output.read_text(encoding="utf-8") == "keep me\n"  # never half-overwritten
    assert main(["-q", "translate", "-c", str(sample_run / "run/best.pt"), "-i", str(source),
                 "-o", str(output), "--replace-invalid"]) == 0
    assert len(output.read_text(encoding="utf-8").splitlines()) == 2


def test_missing_or_damaged_checkpoint(sample_run, tmp_path, capsys):
    assert main(["translate", "-c", str(tmp_path / "none.pt")]) == 1
    assert "checkpoint not found" in one_line_error(capsys)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((sample_run / "run/best.pt").read_bytes()[:5000])
    assert main(["translate", "-c", str(truncated)]) == 1
    assert "truncated or damaged" in one_line_error(capsys)


def test_score_line_count_mismatch(tmp_path, capsys):
    (tmp_path / "hyp").write_text("a\n", encoding="utf-8")
    (tmp_path / "ref").write_text("a\nb\n", encoding="utf-8")
    assert main(["score", "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp")]) == 1
    assert "has 1 lines but" in one_line_error(capsys)


def test_training_a_finished_run_again_changes_nothing(sample_run, caplog):
    run = sample_run / "run"
    before = {name: (run / name).read_bytes() for name in ("last.pt", "metrics.jsonl")}
    assert main(["train", str(sample_run / "config.yaml")]) == 0
    assert any("nothing to do" in r.message for r in caplog.records)
    assert {name: (run / name).read_bytes() for name in before} == before


@pytest.mark.parametrize("args", [["--beam", "0"], ["--batch-size", "0"], ["--alpha", "-1"],
                                  ["--max-length-ratio", "0"], ["--threads", "-1"]])
def test_translate_rejects_bad_options(sample_run, args, capsys):
    assert main(["translate", "-c", str(sample_run / "run/best.pt"), *args]) == 1
    assert one_line_error(capsys).startswith(f"nmt translate: error: {args[0]}: ")


def test_translate_threads_sets_torch_threads(sample_run, tmp_path):
    try:
        assert main(["-q", "translate", "-c", str(sample_run / "run/best.pt"), "-i",
                     str(REPO / "data/test.en"), "-o", str(tmp_path / "out"), "--threads",
                     "2"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)  # as conftest set it


def test_train_seed_and_output_dir_flags(sample_run, tmp_path):
    """Independently seeded members of an ensemble from one config: --seed, --output-dir."""
    config = run_config(sample_run, tmp_path, "unused", max_steps=3, validate_every=3)
    for name, seed in (("a", 1), ("b", 2), ("c", 1)):
        args = ["-q", "train", str(config), "--seed", str(seed),
                "--output-dir", str(tmp_path / name)]
        assert main(args) == 0
    assert not (tmp_path / "unused").exists()
    saved = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    assert saved["training"]["seed"] == 2
    assert saved["training"]["output_dir"] == str(tmp_path / "b")
    weights = {name: load_checkpoint(tmp_path / name / "best.pt").model_state
               for name in "abc"}
    assert_equal_state(weights["a"], weights["c"])
    assert not all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])


def test_a_reader_that_stops_early_is_no_error(tmp_path):
    """`nmt score ... | head`: no "error: Broken pipe" once the reader has gone, and the
    status a shell gives a process killed by SIGPIPE."""
    lines = tmp_path / "lines.txt"
    lines.write_text("ein hund\nzwei katzen\n", encoding="utf-8")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        done = subprocess.run([sys.executable, "-m", "nmt", "score", "--ref", str(lines),
                               "--hyp", str(lines)], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, cwd=REPO, timeout=300)
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141
