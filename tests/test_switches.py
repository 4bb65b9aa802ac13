"""The model switches of the seeds' extensions: parameter counts, computation, bad combinations."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import random_batch, tiny_config, tiny_model
from nmt.config import ModelConfig, config_from_dict
from nmt.errors import NmtError
from nmt.model import Seq2Seq, count_parameters

SRC_VOCAB, TGT_VOCAB = 30, 40  # tiny_model's
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def expected_parameters(c: ModelConfig) -> int:
    """The parameter count by formula, written from README's model section."""
    gates = GATES[c.cell]

    def rnn_layer(inputs: int, hidden: int) -> int:  # W_ih, W_hh, b_ih, b_hh
        return gates * hidden * (inputs + hidden) + 2 * gates * hidden

    emb, enc_h, dec_h = c.embedding_size, c.encoder_hidden_size, c.decoder_hidden_size
    directions = 2 if c.bidirectional else 1
    enc = directions * enc_h  # annotation size
    encoder = SRC_VOCAB * emb + sum(directions * rnn_layer(emb if i == 0 else enc, enc_h)
                                    for i in range(c.encoder_layers))
    states = 2 if c.cell == "lstm" else 1
    attention = enc * c.attention_size + 2 * c.attention_size + dec_h * c.attention_size \
        if c.attention == "additive" else 0
    bridge = (enc + 1) * states * c.decoder_layers * dec_h
    dec_in = (emb if c.decoder_input_prev_word else 0) + (enc if c.decoder_input_context else 0)
    cells = sum(rnn_layer(dec_in if i == 0 else dec_h, dec_h) for i in range(c.decoder_layers))
    shared = c.decoder_layers * (gates * dec_h * dec_h + gates * dec_h) \
        if c.share_encoder_decoder else 0
    output = (dec_h + enc + emb + 1) * c.output_size + (c.output_size + 1) * TGT_VOCAB
    return encoder + TGT_VOCAB * emb + attention + bridge + cells - shared + output


SWITCHES = {
    "default": {},
    "unidirectional": {"bidirectional": False},
    "shared": {"share_encoder_decoder": True, "encoder_hidden_size": 20},
    "shared_unidirectional": {"share_encoder_decoder": True, "encoder_hidden_size": 20,
                              "bidirectional": False},
    "no_context_input": {"decoder_input_context": False},
    "no_prev_word_input": {"decoder_input_prev_word": False},
    "no_decoder_input": {"decoder_input_context": False, "decoder_input_prev_word": False},
    "one_layer": {"encoder_layers": 1, "decoder_layers": 1},
    "no_attention": {"attention": "none"},
    "gru": {"cell": "gru"},
    "rnn": {"cell": "rnn"},
    "plain": {"share_encoder_decoder": True, "encoder_hidden_size": 20,
              "decoder_input_context": False, "decoder_input_prev_word": False,
              "encoder_layers": 1, "decoder_layers": 1, "bidirectional": False,
              "attention": "none"},
}


@pytest.mark.parametrize("name", SWITCHES)
def test_parameter_count_follows_the_formula(name):
    model = tiny_model(**SWITCHES[name])
    assert count_parameters(model) == expected_parameters(model.config)


def test_each_switch_changes_the_count_by_its_stated_amount():
    default = count_parameters(tiny_model())
    # tiny_config: emb 16, encoder 12 per direction x 2 layers, decoder 20 x 2 layers, LSTM.
    lstm = 4
    assert default - count_parameters(tiny_model(decoder_input_prev_word=False)) == lstm * 20 * 16
    assert default - count_parameters(tiny_model(decoder_input_context=False)) == lstm * 20 * 24
    wide = count_parameters(tiny_model(encoder_hidden_size=20))
    assert wide - count_parameters(tiny_model(encoder_hidden_size=20, share_encoder_decoder=True)
                                   ) == 2 * (lstm * 20 * 20 + lstm * 20)


def decoder_rnn_outputs(model: Seq2Seq, src: torch.Tensor, prev_tokens: torch.Tensor,
                        memory_src: torch.Tensor | None = None) -> torch.Tensor:
    """s_1..s_T of the decoder RNN (1 x T x hidden) for previous tokens `prev_tokens` (1 x T).

    The initial state always comes from `src`; the memory the steps read (context)
    from `memory_src` if given.
    """
    lengths = torch.tensor([src.size(1)])
    memory, state = model.encode(src, lengths)
    if memory_src is not None:
        memory, _ = model.encode(memory_src, torch.tensor([memory_src.size(1)]))
    embedded = model.decoder.embedding(prev_tokens)
    outputs = []
    with torch.no_grad():
        for t in range(prev_tokens.size(1)):
            result = model.decoder.step(embedded[:, t], state, memory)
            outputs.append(result[0])  # s_t comes first and the new state last
            state = result[-1]
    return torch.stack(outputs, 1)


SOURCE, OTHER_SOURCE = random_batch(3, [6])[0], random_batch(4, [6])[0]
TOKENS = torch.tensor([[1, 7, 9, 11, 5]])
OTHER_TOKENS = torch.tensor([[1, 8, 20, 6, 30]])


@pytest.mark.parametrize("attention", ["additive", "none"])
def test_without_prev_word_input_the_decoder_rnn_ignores_the_previous_tokens(attention):
    model = tiny_model(attention=attention, decoder_input_prev_word=False)
    torch.testing.assert_close(decoder_rnn_outputs(model, SOURCE, TOKENS),
                               decoder_rnn_outputs(model, SOURCE, OTHER_TOKENS))
    on = tiny_model(attention=attention)
    assert not torch.allclose(decoder_rnn_outputs(on, SOURCE, TOKENS),
                              decoder_rnn_outputs(on, SOURCE, OTHER_TOKENS))


def test_without_prev_word_input_the_output_layer_still_sees_the_previous_word():
    model = tiny_model(decoder_input_prev_word=False)
    lengths = torch.tensor([SOURCE.size(1)])
    with torch.no_grad():
        logits = model(SOURCE, lengths, TOKENS), model(SOURCE, lengths, OTHER_TOKENS)
    assert not torch.allclose(*logits)


@pytest.mark.parametrize("attention", ["additive", "none"])
def test_without_context_input_the_decoder_rnn_reads_the_source_only_through_its_start(
        attention):
    model = tiny_model(attention=attention, decoder_input_context=False)
    torch.testing.assert_close(decoder_rnn_outputs(model, SOURCE, TOKENS),
                               decoder_rnn_outputs(model, SOURCE, TOKENS, OTHER_SOURCE))
    on = tiny_model(attention=attention)
    assert not torch.allclose(decoder_rnn_outputs(on, SOURCE, TOKENS),
                              decoder_rnn_outputs(on, SOURCE, TOKENS, OTHER_SOURCE))


def test_without_any_input_the_decoder_rnn_runs_on_its_state_alone():
    model = tiny_model(decoder_input_context=False, decoder_input_prev_word=False)
    assert model.decoder.cells[0].weight_ih.numel() == 0
    reference = decoder_rnn_outputs(model, SOURCE, TOKENS)
    torch.testing.assert_close(reference, decoder_rnn_outputs(model, SOURCE, OTHER_TOKENS,
                                                              OTHER_SOURCE))
    assert not torch.allclose(reference, decoder_rnn_outputs(model, OTHER_SOURCE, TOKENS))


def test_unidirectional_encoder_reads_left_to_right_only():
    model = tiny_model(bidirectional=False)
    src, lengths = random_batch(5, [6])
    changed = src.clone()
    changed[0, 4] = 4 if src[0, 4] != 4 else 5
    memory, _ = model.encode(src, lengths)
    memory_changed, _ = model.encode(changed, lengths)
    assert memory.annotations.shape == (1, 6, 12)
    torch.testing.assert_close(memory.annotations[:, :4], memory_changed.annotations[:, :4])
    assert not torch.allclose(memory.annotations[:, 4:], memory_changed.annotations[:, 4:])
    # The summary is the top layer's state after the last real token.
    torch.testing.assert_close(memory.summary, memory.annotations[:, -1])
    both = tiny_model()
    memory, _ = both.encode(src, lengths)
    memory_changed, _ = both.encode(changed, lengths)
    assert not torch.allclose(memory.annotations[:, 0], memory_changed.annotations[:, 0])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_shared_recurrent_weights_stay_one_tensor_through_training_and_loading(cell):
    model = tiny_model(cell=cell, encoder_hidden_size=20, share_encoder_decoder=True).train()
    for i, decoder_cell in enumerate(model.decoder.cells):
        assert decoder_cell.weight_hh is getattr(model.encoder.rnn, f"weight_hh_l{i}")
        assert decoder_cell.bias_hh is getattr(model.encoder.rnn, f"bias_hh_l{i}")
        assert decoder_cell.weight_ih is not getattr(model.encoder.rnn, f"weight_ih_l{i}")
    src, lengths = random_batch(6, [5, 3])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    before = model.decoder.cells[1].weight_hh.detach().clone()
    model(src, lengths, torch.randint(4, 40, (2, 4))).sum().backward()
    optimizer.step()
    assert not torch.equal(before, model.decoder.cells[1].weight_hh)
    loaded = Seq2Seq(model.config, SRC_VOCAB, TGT_VOCAB)
    loaded.load_state_dict(model.state_dict())
    assert loaded.decoder.cells[1].weight_hh is loaded.encoder.rnn.weight_hh_l1
    torch.testing.assert_close(loaded.decoder.cells[1].weight_hh, model.encoder.rnn.weight_hh_l1)


@pytest.mark.parametrize("sizes", [{"encoder_hidden_size": 12}, {"encoder_hidden_size": 20,
                                                                 "encoder_layers": 1}])
def test_sharing_weights_of_other_sizes_is_one_line_naming_the_keys(sizes):
    raw = {"model": dataclasses.asdict(tiny_config(share_encoder_decoder=True, **sizes))}
    with pytest.raises(NmtError) as error:
        config_from_dict(raw, source="x.yaml")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("x.yaml: model.share_encoder_decoder: needs encoder_hidden_size "
                              "= decoder_hidden_size")
    assert "encoder_layers = decoder_layers" in message


def test_a_config_without_the_switches_builds_todays_model():
    raw = dataclasses.asdict(tiny_config())
    for key in ("bidirectional", "share_encoder_decoder", "decoder_input_context",
                "decoder_input_prev_word"):
        del raw[key]
    config = config_from_dict({"model": raw}).model
    assert config == tiny_config()
    assert count_parameters(Seq2Seq(config, SRC_VOCAB, TGT_VOCAB)) == \
        expected_parameters(tiny_config())
