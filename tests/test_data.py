"""Corpus reading, preprocessing filters, binary ids and token batches."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

import nmt.preprocess
from conftest import REPO, write_config
from nmt.config import load_config
from nmt.data import ParallelData, make_batch, open_ids_writer, read_ids, token_batches
from nmt.errors import NmtError
from nmt.preprocess import load_vocabularies, preprocess
from nmt.textio import atomic_write, read_lines
from nmt.vocabulary import BOS, EOS, PAD, Vocabulary, normalize


def test_read_lines_handles_gzip_crlf_and_a_missing_final_newline(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_bytes(b"one\r\ntwo\n\nthree")
    packed = tmp_path / "a.txt.gz"
    with gzip.open(packed, "wb") as stream:
        stream.write(b"one\r\ntwo\n\nthree")
    assert list(read_lines(plain)) == list(read_lines(packed)) == ["one", "two", "", "three"]


def test_read_lines_reports_invalid_utf8_by_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nstill fine\nbroken \xc3\x28 here\n")
    with pytest.raises(NmtError, match=r"bad.txt:3: invalid UTF-8"):
        list(read_lines(path))
    assert list(read_lines(path, replace_invalid=True))[2] == "broken \ufffd( here"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as stream:
            stream.write("half of the new")
            raise RuntimeError("crash")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_normalize_collapses_whitespace_and_control_characters():
    assert normalize("  a\tb\x00\x07  c\u200b\n") == "a b c"
    assert normalize("\x1b\x1b  ") == ""
    assert normalize("Ä", lowercase=True) == "ä"


def test_ids_round_trip(tmp_path):
    sentences = [[5, 6, 7], [], [8], list(range(4, 300))]
    with open_ids_writer(tmp_path / "x.src") as writer:
        for ids in sentences:
            writer.add(ids)
    ids, offsets = read_ids(tmp_path / "x.src")
    assert [ids[offsets[i]:offsets[i + 1]].tolist() for i in range(4)] == sentences


def test_token_batches_cover_every_sentence_once_within_budget():
    generator = torch.Generator().manual_seed(0)
    tgt_lengths = torch.randint(1, 40, (1000,))
    src_lengths = torch.randint(1, 40, (1000,))
    batches = token_batches(src_lengths, tgt_lengths, 300, 100, generator)
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert all(sum(int(tgt_lengths[i]) + 1 for i in batch) <= 300 for batch in batches)
    again = token_batches(src_lengths, tgt_lengths, 300, 100, torch.Generator().manual_seed(0))
    assert again == batches  # the same seed gives the same batches
    # length bucketing: most padded target positions are real tokens
    real = sum(int(tgt_lengths[i]) for b in batches for i in b)
    padded = sum(len(b) * max(int(tgt_lengths[i]) for i in b) for b in batches)
    assert real / padded > 0.95


def test_make_batch_adds_bos_and_eos(tmp_path):
    for side, sentences in (("src", [[5, 6], [7]]), ("tgt", [[8], [9, 10, 11]])):
        with open_ids_writer(tmp_path / f"s.{side}") as writer:
            for ids in sentences:
                writer.add(ids)
    data = ParallelData(*read_ids(tmp_path / "s.src"), *read_ids(tmp_path / "s.tgt"))
    batch = make_batch(data, [0, 1])
    assert batch.src.tolist() == [[5, 6], [7, PAD]] and batch.src_lengths.tolist() == [2, 1]
    assert batch.tgt_in.tolist() == [[BOS, 8, PAD, PAD], [BOS, 9, 10, 11]]
    assert batch.tgt_out.tolist() == [[8, EOS, PAD, PAD], [9, 10, 11, EOS]]
    assert batch.num_tokens == 6


def test_preprocess_counts_each_drop_by_reason(tmp_path):
    src = ["a cat", "", "a dog runs", "   ", "the " * 80, "word", "a house"] * 20
    tgt = ["eine Katze", "x", "ein Hund läuft", "y", "die " * 80,
           "ein langer Satz hier", ""] * 20
    (tmp_path / "train.en").write_text("\n".join(src) + "\n", encoding="utf-8")
    (tmp_path / "train.de").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    config = load_config(write_config(
        tmp_path / "c.yaml", tmp_path,
        data={"train": str(tmp_path / "train"), "max_length": 40, "max_length_ratio": 3.0},
        sentencepiece={"vocab_size": 40, "model_type": "char"}))
    stats = preprocess(config)
    assert stats["drops"] == {"empty": 60, "too_long": 20, "length_ratio": 20}
    assert stats["train"]["pairs"] == 40 and stats["dev"]["pairs"] == 200
    assert json.loads((tmp_path / "prepared" / "stats.json").read_text()) == stats
    src_vocab, tgt_vocab = load_vocabularies(tmp_path / "prepared", joint=True)
    train = ParallelData.load(tmp_path / "prepared", "train", src_vocab, tgt_vocab)
    assert len(train) == 40
    assert src_vocab.decode(train.src(0).tolist()) == "a cat"
    assert tgt_vocab.decode(train.tgt(1).tolist()) == "ein Hund läuft"


def test_separate_sentencepiece_models_per_side(tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", tmp_path,
                                      sentencepiece={"joint": False, "vocab_size": 200}))
    stats = preprocess(config)
    prepared = tmp_path / "prepared"
    assert (prepared / "spm.src.model").is_file() and (prepared / "spm.tgt.model").is_file()
    src_vocab, tgt_vocab = load_vocabularies(prepared, joint=False)
    assert src_vocab.model_proto != tgt_vocab.model_proto
    assert len(src_vocab) == stats["src_vocab_size"] <= 200
    train = ParallelData.load(prepared, "train", src_vocab, tgt_vocab)
    assert tgt_vocab.decode(train.tgt(0).tolist()) == normalize(
        (REPO / "data/train.de").read_text(encoding="utf-8").splitlines()[0])


@pytest.mark.parametrize("chunk_lines", [7, 8])  # 3,000 and 200 pairs: a remainder, none
def test_encoding_in_chunks_writes_every_pair_once_in_order(tmp_path, monkeypatch, chunk_lines):
    monkeypatch.setattr(nmt.preprocess, "CHUNK_LINES", chunk_lines)
    config = load_config(write_config(tmp_path / "c.yaml", tmp_path))
    stats = preprocess(config)
    assert stats["drops"] == {}  # so every pair of the sample is written
    pieces = Vocabulary.from_file(tmp_path / "prepared/spm.joint.model")  # SentencePiece ids
    for split in ("train", "dev"):
        for side, lang in (("src", "en"), ("tgt", "de")):
            lines = [normalize(line) for line in read_lines(REPO / f"data/{split}.{lang}")]
            ids, offsets = read_ids(tmp_path / f"prepared/{split}.{side}")
            written = [ids[offsets[i]:offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]
            assert written == pieces.encode(lines), (split, side)
