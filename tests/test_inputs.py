"""Whatever text comes in, preprocessing and translation keep one line per line."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmt.checkpoint import load_checkpoint
from nmt.config import DataConfig
from nmt.data import read_ids
from nmt.device import resolve_device
from nmt.preprocess import _encode_split
from nmt.config import DecodingConfig
from nmt.translate_io import translate_file
from nmt.translation import Translator
from nmt.vocabulary import normalize

# Any Unicode except the line separator itself (\n ends a line by definition; \r\n too).
line_text = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)),
                    max_size=60)
lines_of_text = st.lists(line_text, min_size=1, max_size=12)
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def translator(sample_run):
    checkpoint = load_checkpoint(sample_run / "run/best.pt")
    return Translator([checkpoint], resolve_device("cpu"),
                      decoding=DecodingConfig(beam_size=2, max_length_ratio=1.0, batch_size=4))


@given(line_text)
def test_normalize_leaves_no_line_breaks_and_is_idempotent(text):
    once = normalize(text)
    assert once == normalize(once)
    assert len(once.splitlines()) <= 1 and once == once.strip()


@SETTINGS
@given(lines=lines_of_text)
def test_translate_keeps_one_output_line_per_input_line(translator, tmp_path, lines):
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
    assert translate_file(translator, str(source), str(output)) == len(lines)
    result = output.read_bytes().decode("utf-8")
    assert result.count("\n") == len(lines) and result.endswith("\n")
    assert len(result.splitlines()) == len(lines)  # no stray separators (U+2028, \x85, ...)
    for line, translated in zip(lines, result.split("\n")):
        if not normalize(line):
            assert translated == ""


@SETTINGS
@given(pairs=st.lists(st.tuples(line_text, line_text), min_size=1, max_size=10))
def test_encoding_keeps_every_dev_pair(translator, tmp_path, pairs):
    vocab = translator.src_vocab
    normalized = [(normalize(s), normalize(t)) for s, t in pairs]
    counts = _encode_split(iter(normalized), tmp_path / "dev", vocab, vocab, DataConfig(),
                           Counter(), seen=None)
    assert counts["pairs"] == len(pairs)
    _, offsets = read_ids(tmp_path / "dev.src")
    assert len(offsets) == len(pairs) + 1


def test_a_huge_line_is_cut_with_a_warning_not_a_crash(translator, tmp_path, caplog):
    source = tmp_path / "huge.txt"
    source.write_text("short line\n" + "A dog runs. " * 9000 + "\n\n", encoding="utf-8")
    output = tmp_path / "out.txt"
    assert translate_file(translator, str(source), str(output)) == 3
    assert output.read_text(encoding="utf-8").count("\n") == 3
    assert any("translating only the first" in r.message for r in caplog.records)


def test_an_empty_file_gives_an_empty_output(translator, tmp_path):
    source, output = tmp_path / "empty.txt", tmp_path / "out.txt"
    source.write_bytes(b"")
    assert translate_file(translator, str(source), str(output)) == 0
    assert output.read_bytes() == b""


def test_an_output_file_appears_only_when_complete(translator, tmp_path, monkeypatch):
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("one\ntwo\n", encoding="utf-8")
    output.write_text("previous result\n", encoding="utf-8")

    def crash(*args, **kwargs):
        raise RuntimeError("crash mid-translation")

    monkeypatch.setattr(translator, "translate", crash)
    with pytest.raises(RuntimeError):
        translate_file(translator, str(source), str(output))
    assert output.read_text(encoding="utf-8") == "previous result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]
