"""Dev-set measurements: perplexity and greedy BLEU as training logs them."""

from __future__ import annotations

import torch

import nmt.evaluation
from conftest import tiny_model, write_config
from nmt.config import load_config
from nmt.data import ParallelData
from nmt.evaluation import bleu_description, dev_bleu
from nmt.preprocess import load_vocabularies, preprocess
from nmt.textio import read_lines
from nmt.vocabulary import normalize


def test_dev_bleu_of_a_lowercasing_setup_scores_against_lowercased_references(tmp_path,
                                                                              monkeypatch):
    config = load_config(write_config(tmp_path / "c.yaml", tmp_path,
                                      data={"lowercase": True}))
    preprocess(config)
    prepared = tmp_path / "prepared"
    src_vocab, tgt_vocab = load_vocabularies(prepared, joint=True)
    dev = ParallelData.load(prepared, "dev", src_vocab, tgt_vocab)
    references = list(read_lines(prepared / "dev.ref"))
    assert any(ref != ref.lower() for ref in references)  # the raw references are cased
    # A perfect model of this setup outputs each reference as preprocessing saw it.
    perfect = tgt_vocab.encode([normalize(ref, lowercase=True) for ref in references])
    monkeypatch.setattr(nmt.evaluation, "translate_ids", lambda *args: perfect)
    model = tiny_model(src_vocab=len(src_vocab), tgt_vocab=len(tgt_vocab))
    assert dev_bleu(model, dev, references, tgt_vocab, torch.device("cpu"), config) == 100.0
    assert "lowercased" in bleu_description(config)
