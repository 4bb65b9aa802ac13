"""Greedy and beam search: agreement, batch invariance, scores, and a model that learns."""

from __future__ import annotations

import pytest
import torch

from conftest import random_batch, tiny_model
from nmt.model import token_nll
from nmt.scoring import corpus_bleu
from nmt.search import (beam_search, greedy_search, length_penalty, max_output_lengths,
                        translate_ids)
from nmt.vocabulary import BOS, EOS, PAD


def sequence_score(model, src, length, hypothesis, limit, alpha):
    """Length-normalised log-probability, as beam search scores a finished hypothesis."""
    ended = len(hypothesis) < limit  # a hypothesis cut at the limit has no EOS
    target = hypothesis + [EOS] if ended else hypothesis
    tgt_in = torch.tensor([[BOS] + target[:-1]])
    with torch.inference_mode():
        logits = model(src.unsqueeze(0)[:, :length], torch.tensor([length]), tgt_in)
        log_prob = -token_nll(logits, torch.tensor([target])).item()
    return log_prob / length_penalty(len(target), alpha)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cell,attention", [("lstm", "additive"), ("gru", "none")])
def test_beam_size_one_equals_greedy(seed, cell, attention):
    model = tiny_model(seed=seed, cell=cell, attention=attention)
    src, lengths = random_batch(seed, [5, 1, 9, 3, 7])
    assert beam_search(model, src, lengths, beam_size=1) == greedy_search(model, src, lengths)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_translation_does_not_depend_on_batch_composition(search):
    model = tiny_model(seed=7)
    sources = [random_batch(i, [n])[0][0].tolist() for i, n in enumerate([4, 9, 2, 6, 6, 3, 8])]
    beam = 1 if search == "greedy" else 4
    together = translate_ids(model, sources, beam, 1.0, 2.0, batch_size=7)
    alone = translate_ids(model, sources, beam, 1.0, 2.0, batch_size=1)
    assert together == alone


def test_translate_ids_keeps_order_and_empty_inputs():
    model = tiny_model(seed=8)
    sources = [[5, 6, 7], [], [9, 10, 11, 12, 13, 14], [4]]
    outputs = translate_ids(model, sources, 3, 1.0, 2.0, batch_size=2)
    assert len(outputs) == 4 and outputs[1] == []
    assert outputs[0] == translate_ids(model, [sources[0]], 3, 1.0, 2.0, batch_size=1)[0]


def test_outputs_respect_the_length_limit():
    model = tiny_model(seed=9)
    src, lengths = random_batch(9, [3, 6])
    limits = max_output_lengths(lengths, 0.5).tolist()
    for output, limit in zip(greedy_search(model, src, lengths, 0.5), limits):
        assert len(output) <= limit
    for output, limit in zip(beam_search(model, src, lengths, 3, 1.0, 0.5), limits):
        assert len(output) <= limit
        assert PAD not in output and BOS not in output and EOS not in output


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_is_never_worse_than_greedy_under_its_own_score(seed, alpha):
    model = tiny_model(seed=seed, tgt_vocab=12)  # a small vocabulary gives EOS a fair chance
    src, lengths = random_batch(seed + 100, [4, 7, 2, 5])
    limits = max_output_lengths(lengths, 2.0).tolist()
    greedy = greedy_search(model, src, lengths)
    beam = beam_search(model, src, lengths, beam_size=5, alpha=alpha)
    for row in range(len(greedy)):
        args = (model, src[row], int(lengths[row]))
        assert (sequence_score(*args, beam[row], limits[row], alpha)
                >= sequence_score(*args, greedy[row], limits[row], alpha) - 1e-5)


def test_a_tiny_model_overfits_a_few_pairs_to_bleu_100():
    torch.manual_seed(0)
    pairs = [([5, 6, 7, 8], [9, 10, 11]), ([12, 13], [14, 15, 16, 17]),
             ([7, 5, 18], [11, 9]), ([19, 20, 21, 22, 23], [24, 25, 26, 27, 28]),
             ([6, 6, 29], [16, 14, 10]), ([8, 13, 5], [27, 9, 15, 11])]
    model = tiny_model(seed=0, embedding_size=32, encoder_hidden_size=32,
                       decoder_hidden_size=48, attention_size=32, output_size=32)
    src, lengths = random_batch(0, [len(s) for s, _ in pairs])
    for row, (s, _) in enumerate(pairs):
        src[row, :len(s)] = torch.tensor(s)
    width = max(len(t) for _, t in pairs) + 1
    tgt_in = torch.full((len(pairs), width), PAD)
    tgt_out = torch.full((len(pairs), width), PAD)
    for row, (_, t) in enumerate(pairs):
        tgt_in[row, :len(t) + 1] = torch.tensor([BOS] + t)
        tgt_out[row, :len(t) + 1] = torch.tensor(t + [EOS])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    model.train()
    for _ in range(200):
        optimizer.zero_grad()
        loss = token_nll(model(src, lengths, tgt_in), tgt_out) / int((tgt_out != PAD).sum())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    model.eval()
    references = [" ".join(map(str, t)) for _, t in pairs]
    for outputs in (greedy_search(model, src, lengths), beam_search(model, src, lengths, 4)):
        hypotheses = [" ".join(map(str, o)) for o in outputs]
        assert hypotheses == references
        assert corpus_bleu(hypotheses, references) == 100.0
