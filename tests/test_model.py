"""Shapes, masks, padding invariance and `reverse_source` of the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from conftest import random_batch, tiny_model
from nmt.encoder import reverse_padded, run_padded
from nmt.model import token_nll
from nmt.vocabulary import PAD


def test_forward_shapes(model):
    src, lengths = random_batch(0, [7, 3, 5])
    tgt_in = torch.randint(4, 40, (3, 6))
    logits = model(src, lengths, tgt_in)
    assert logits.shape == (3, 6, 40)
    memory, state = model.encode(src, lengths)
    assert memory.annotations.shape == (3, 7, 24)  # 2 directions x 12
    assert memory.projected_keys.shape == (3, 7, 14)
    assert len(state) == 2 and all(h.shape == (3, 20) for layer in state for h in layer)


def test_attention_gives_padding_zero_weight(model):
    src, lengths = random_batch(1, [6, 2, 4])
    memory, state = model.encode(src, lengths)
    _, weights = model.decoder.attention(state[-1][0], memory.projected_keys,
                                         memory.annotations, memory.mask)
    for row, length in enumerate(lengths.tolist()):
        assert torch.all(weights[row, length:] == 0)
        assert weights[row, :length].sum().item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_encoding_does_not_depend_on_the_rest_of_the_batch(cell):
    model = tiny_model(cell=cell)
    src, lengths = random_batch(2, [3, 8, 5])
    memory, _ = model.encode(src, lengths)
    for row, length in enumerate(lengths.tolist()):
        alone, _ = model.encode(src[row:row + 1, :length], lengths[row:row + 1])
        torch.testing.assert_close(memory.annotations[row, :length], alone.annotations[0])
        assert torch.all(memory.annotations[row, length:] == 0)
        torch.testing.assert_close(memory.summary[row], alone.summary[0])


def test_reverse_padded_reverses_only_real_tokens():
    tokens = torch.tensor([[5, 6, 7, PAD], [8, 9, PAD, PAD], [4, 5, 6, 7]])
    reversed_tokens = reverse_padded(tokens, torch.tensor([3, 2, 4]))
    assert reversed_tokens.tolist() == [[7, 6, 5, PAD], [9, 8, PAD, PAD], [7, 6, 5, 4]]


def test_reverse_source_equals_feeding_the_reversed_sentence():
    reversing = tiny_model(seed=3, reverse_source=True)
    plain = tiny_model(seed=3, reverse_source=False)
    src, lengths = random_batch(4, [5, 2])
    flipped = reverse_padded(src, lengths)
    torch.testing.assert_close(reversing.encode(src, lengths)[0].annotations,
                               plain.encode(flipped, lengths)[0].annotations)


def test_attention_none_uses_the_fixed_encoder_summary():
    model = tiny_model(attention="none")
    src, lengths = random_batch(5, [4, 6])
    memory, state = model.encode(src, lengths)
    assert memory.projected_keys is None
    _, context, weights, _ = model.decoder.step(torch.zeros(2, 16), state, memory)
    torch.testing.assert_close(context, memory.summary)
    assert weights is None


def test_loss_ignores_padding(model):
    src, lengths = random_batch(6, [4, 4])
    tgt = torch.tensor([[5, 6, 7, 3], [8, 3, PAD, PAD]])
    logits = model(src, lengths, tgt)
    summed = token_nll(logits, tgt)
    by_hand = -sum(torch.log_softmax(logits[r, t], -1)[tgt[r, t]]
                   for r, t in [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)])
    torch.testing.assert_close(summed, by_hand)


def test_tied_embeddings_share_one_tensor():
    model = tiny_model(tie_target_embeddings=True)
    assert model.decoder.output.weight is model.decoder.embedding.weight


def bahdanau_weights(attention, query, keys, mask):
    """The textbook form: softmax_j(v^T tanh(W q + b + U h_j)) over real positions."""
    energies = torch.tanh(attention.query_projection(query).unsqueeze(1)
                          + attention.key_projection(keys))
    scores = attention.energy(energies).squeeze(2).masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=1)


def test_attention_equals_the_tanh_formula_with_its_gradients():
    """The sigmoid form of the energies (a speed change) computes Bahdanau's weights."""
    model = tiny_model(seed=6)
    src, lengths = random_batch(6, [7, 3, 5])
    memory, state = model.encode(src, lengths)
    query = state[-1][0].detach().requires_grad_()
    attention = model.decoder.attention
    keys = memory.annotations.detach()
    expected = bahdanau_weights(attention, query, keys, memory.mask)
    _, weights = attention(query, attention.project_keys(keys), keys, memory.mask)
    torch.testing.assert_close(weights, expected, rtol=0, atol=1e-6)
    probe = torch.randn_like(expected)
    grads = [torch.autograd.grad((w * probe).sum(), [query, attention.energy.weight])
             for w in (weights, expected)]
    for new, old in zip(*grads):
        torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer,kwargs", [
    (nn.LSTM, {}), (nn.GRU, {}), (nn.RNN, {}), (nn.RNN, {"nonlinearity": "relu"}),
    (nn.LSTM, {"bidirectional": False}), (nn.LSTM, {"bias": False})])
def test_whole_tensor_recurrence_equals_the_packed_one_with_gradients(layer, kwargs):
    torch.manual_seed(0)
    settings = {"num_layers": 2, "bidirectional": True, "batch_first": True, **kwargs}
    rnn = layer(6, 5, **settings)
    inputs = torch.randn(4, 7, 6)
    lengths = torch.tensor([3, 7, 1, 5])
    weights = torch.randn(4, 7, rnn.hidden_size * (2 if rnn.bidirectional else 1))

    def outputs_and_grads(run):
        x = inputs.clone().requires_grad_()
        rnn.zero_grad()
        out = run(x)
        (out * weights).sum().backward()
        return [out.detach(), x.grad] + [p.grad.clone() for p in rnn.parameters()]

    def packed(x):
        out, _ = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        return pad_packed_sequence(out, batch_first=True, total_length=7)[0]

    for ours, theirs in zip(outputs_and_grads(lambda x: run_padded(rnn, x, lengths)),
                            outputs_and_grads(packed)):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_the_encoder_summary_is_the_top_layers_final_states(bidirectional):
    model = tiny_model(bidirectional=bidirectional)
    src, lengths = random_batch(2, [6, 3, 5, 1])
    annotations, summary = model.encoder(src, lengths)
    packed = pack_padded_sequence(model.encoder.embedding(src), lengths, batch_first=True,
                                  enforce_sorted=False)
    _, (hidden, _) = model.encoder.rnn(packed)
    directions = 2 if bidirectional else 1
    torch.testing.assert_close(summary, torch.cat(list(hidden[-directions:]), dim=1))
    assert torch.all(annotations[1, 3:] == 0) and torch.all(annotations[3, 1:] == 0)
