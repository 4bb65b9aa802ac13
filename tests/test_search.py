"""Greedy and beam search: agreement, batch invariance, scores, and a model that learns."""

from __future__ import annotations

import pytest
import torch

from conftest import random_batch, tiny_model
from nmt.decode_step import ModelStep
from nmt.model import token_nll
from nmt.scoring import corpus_bleu
from nmt.search import (beam_search, greedy_search, length_penalty, max_output_lengths,
                        translate_ids)
from nmt.vocabulary import BOS, EOS, PAD


def greedy(model, src, lengths, *args, **kwargs) -> list[list[int]]:
    return [h.tokens for h in greedy_search(ModelStep(model), src, lengths, *args, **kwargs)]


def beam(model, src, lengths, *args, **kwargs) -> list[list[int]]:
    return [hs[0].tokens for hs in beam_search(ModelStep(model), src, lengths, *args, **kwargs)]


def sequence_score(model, src, length, hypothesis, alpha):
    """Length-normalised log-probability (EOS included), as search scores a hypothesis."""
    target = hypothesis + [EOS]
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
    assert beam(model, src, lengths, beam_size=1) == greedy(model, src, lengths)


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
    for output, limit in zip(greedy(model, src, lengths, 0.5), limits):
        assert len(output) + 1 <= limit  # EOS counted
    for output, limit in zip(beam(model, src, lengths, 3, 1.0, 0.5), limits):
        assert len(output) + 1 <= limit
        assert PAD not in output and BOS not in output and EOS not in output


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_is_never_worse_than_greedy_under_its_own_score(seed, alpha):
    model = tiny_model(seed=seed, tgt_vocab=12)  # a small vocabulary gives EOS a fair chance
    src, lengths = random_batch(seed + 100, [4, 7, 2, 5])
    greedy_outputs = greedy(model, src, lengths)
    beam_outputs = beam(model, src, lengths, beam_size=5, alpha=alpha)
    for row in range(len(greedy_outputs)):
        args = (model, src[row], int(lengths[row]))
        assert (sequence_score(*args, beam_outputs[row], alpha)
                >= sequence_score(*args, greedy_outputs[row], alpha) - 1e-5)


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
    for outputs in (greedy(model, src, lengths), beam(model, src, lengths, 4)):
        hypotheses = [" ".join(map(str, o)) for o in outputs]
        assert hypotheses == references
        assert corpus_bleu(hypotheses, references) == 100.0


def biased_model(seed: int, **token_bias: float):
    """A tiny model whose output layer strongly prefers (or avoids) some ids."""
    model = tiny_model(seed=seed)
    with torch.no_grad():
        for token, bias in token_bias.items():
            model.decoder.output.bias[{"PAD": PAD, "BOS": BOS, "EOS": EOS}[token]] += bias
    return model


@pytest.mark.parametrize("beam_size", [1, 4])
def test_pad_and_bos_are_never_output_even_when_most_probable(beam_size):
    model = biased_model(3, PAD=50.0, BOS=40.0)
    src, lengths = random_batch(3, [4, 6, 2])
    for hypotheses in beam_search(ModelStep(model), src, lengths, beam_size, n_best=beam_size):
        for h in hypotheses:
            assert h.tokens and PAD not in h.tokens and BOS not in h.tokens


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_hypothesis_cut_at_the_length_limit_ends_with_eos_and_is_scored_with_it(beam_size,
                                                                                 alpha):
    model = biased_model(4, EOS=-30.0)  # EOS is never chosen freely
    src, lengths = random_batch(4, [3, 5])
    limits = max_output_lengths(lengths, 1.0).tolist()
    results = beam_search(ModelStep(model), src, lengths, beam_size, alpha, 1.0,
                          n_best=beam_size)
    for row, hypotheses in enumerate(results):
        assert len(hypotheses) == beam_size
        for h in hypotheses:
            assert h.reached_limit and len(h.tokens) + 1 == limits[row]
            assert len(h.token_logprobs) == limits[row]
            expected = sequence_score(model, src[row], int(lengths[row]), h.tokens, alpha)
            assert h.score == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_n_best_lists_are_sorted_distinct_and_scored_as_ranked(alpha):
    model = tiny_model(seed=5, tgt_vocab=12)
    src, lengths = random_batch(5, [4, 7, 2])
    for row, hypotheses in enumerate(beam_search(ModelStep(model), src, lengths, 5, alpha,
                                                 n_best=4)):
        assert len(hypotheses) == 4
        scores = [h.score for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hypotheses}) == 4
        for h in hypotheses:
            expected = sequence_score(model, src[row], int(lengths[row]), h.tokens, alpha)
            assert h.score == pytest.approx(expected, abs=1e-4)
            assert h.logprob == pytest.approx(sum(h.token_logprobs))


@pytest.mark.parametrize("reverse_source", [False, True])
def test_beam_one_attention_equals_greedy_attention_and_rows_sum_to_one(reverse_source):
    model = tiny_model(seed=6, reverse_source=reverse_source)
    src, lengths = random_batch(6, [5, 1, 8, 3])
    greedy_results = greedy_search(ModelStep(model), src, lengths, attention=True)
    beam_results = beam_search(ModelStep(model), src, lengths, 1, attention=True)
    for row, (g, [b]) in enumerate(zip(greedy_results, beam_results)):
        assert g.tokens == b.tokens and g.score == pytest.approx(b.score, abs=1e-4)
        assert g.attention.shape == (len(g.tokens) + 1, int(lengths[row]))
        assert torch.allclose(g.attention, b.attention, atol=1e-6)
        assert torch.allclose(g.attention.sum(1), torch.ones(len(g.tokens) + 1), atol=1e-5)


def test_attention_of_a_reversed_source_is_given_in_the_original_order():
    """Reading the source reversed is the same model on reversed input: the attention
    of the reversing model on x equals that of the plain model on reversed x, flipped."""
    plain = tiny_model(seed=7)
    reversing = tiny_model(seed=7, reverse_source=True)
    src, lengths = random_batch(7, [6])
    flipped = src.flip(1)
    [a] = greedy_search(ModelStep(reversing), src, lengths, attention=True)
    [b] = greedy_search(ModelStep(plain), flipped, lengths, attention=True)
    assert a.tokens == b.tokens
    assert torch.allclose(a.attention, b.attention.flip(1), atol=1e-6)


def test_beam_attention_follows_each_hypothesis_through_reordering():
    """Each n-best hypothesis's attention equals that of forcing its own pieces."""
    from nmt.search import force_decode
    model = tiny_model(seed=8, tgt_vocab=12)
    src, lengths = random_batch(8, [5, 3])
    results = beam_search(ModelStep(model), src, lengths, 4, n_best=4, attention=True)
    for row, hypotheses in enumerate(results):
        length = int(lengths[row])
        for h in hypotheses:
            [f] = force_decode(ModelStep(model), src[row:row + 1, :length], lengths[row:row + 1],
                               [h.tokens], attention=True)
            assert torch.allclose(h.attention, f.attention, atol=1e-5)
            assert h.token_logprobs == pytest.approx(f.token_logprobs, abs=1e-4)


def test_forced_decoding_gives_the_training_loss():
    from nmt.search import force_decode
    model = tiny_model(seed=9)
    src, lengths = random_batch(9, [5, 3, 7])
    targets = [[5, 6, 7], [8], [9, 10, 11, 12, 13]]
    hypotheses = force_decode(ModelStep(model), src, lengths, targets)
    for row, (h, target) in enumerate(zip(hypotheses, targets)):
        length = int(lengths[row])
        tgt_in = torch.tensor([[BOS] + target])
        with torch.inference_mode():
            logits = model(src[row:row + 1, :length], lengths[row:row + 1], tgt_in)
            loss = token_nll(logits, torch.tensor([target + [EOS]])).item()
        assert -h.logprob == pytest.approx(loss, rel=1e-5)
        assert len(h.token_logprobs) == len(target) + 1


def test_an_ensemble_of_a_model_with_itself_is_the_model():
    from nmt.decode_step import EnsembleStep
    model = tiny_model(seed=10)
    src, lengths = random_batch(10, [4, 6, 2])
    single = beam_search(ModelStep(model), src, lengths, 3, n_best=2, attention=True)
    double = beam_search(EnsembleStep([ModelStep(model), ModelStep(model)]), src, lengths, 3,
                         n_best=2, attention=True)
    for hs, gs in zip(single, double):
        for h, g in zip(hs, gs):
            assert h.tokens == g.tokens and h.score == pytest.approx(g.score, abs=1e-5)
            assert torch.allclose(h.attention, g.attention, atol=1e-6)


def test_an_ensemble_averages_probabilities():
    from nmt.decode_step import EnsembleStep
    a, b = tiny_model(seed=11), tiny_model(seed=12)
    src, lengths = random_batch(11, [4, 2])
    prev = torch.tensor([BOS, BOS])
    ensemble = EnsembleStep([ModelStep(a), ModelStep(b)])
    log_probs, attention, _ = ensemble.advance(prev, ensemble.start(src, lengths))
    pa, wa, _ = ModelStep(a).advance(prev, ModelStep(a).start(src, lengths))
    pb, wb, _ = ModelStep(b).advance(prev, ModelStep(b).start(src, lengths))
    assert torch.allclose(log_probs.exp(), (pa.exp() + pb.exp()) / 2, atol=1e-6)
    assert torch.allclose(attention, (wa + wb) / 2, atol=1e-6)


def test_beam_computes_the_first_piece_once_per_sentence():
    """The k beams of a sentence start identical: the first step runs one row for them,
    and the n-best equal forced decoding of each hypothesis (as with k rows)."""
    model = tiny_model(seed=9)
    src, lengths = random_batch(9, [5, 3, 6])
    rows = []

    class CountingStep(ModelStep):
        def advance(self, prev_tokens, state):
            rows.append(prev_tokens.numel())
            return super().advance(prev_tokens, state)

    results = beam_search(CountingStep(model), src, lengths, 4, 1.0, n_best=4)
    assert rows[:2] == [3, 12]
    for row, hypotheses in enumerate(results):
        for hypothesis in hypotheses:
            assert hypothesis.score == pytest.approx(
                sequence_score(model, src[row], int(lengths[row]), hypothesis.tokens, 1.0),
                abs=1e-5)
