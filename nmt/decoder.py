"""The attentional recurrent decoder, with its own embeddings and weights.

Each step reads the previous word's embedding, the previous state and the
context c_t, which additive attention computes from the previous state (or, with
``attention: none``, the encoder's fixed summary):

    c_t = attend(s_{t-1}, h_1..h_n)
    s_t = RNN([E y_{t-1}; c_t], s_{t-1})
    p(y_t) = softmax(W_out tanh(W_o [s_t; c_t; E y_{t-1}]) + b)

``decoder_input_prev_word: false`` or ``decoder_input_context: false`` leave that
part out of the RNN's input (with both false it reads nothing: s_t = RNN(s_{t-1}),
the plain decoder of seed 000, eq. 24); the output layer always sees all three.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from nmt.attention import AdditiveAttention
from nmt.config import ModelConfig
from nmt.layers import Dropout, GRUCell, Linear, LSTMCell, RNNCell
from nmt.vocabulary import PAD

CELL_CLASSES = {"lstm": LSTMCell, "gru": GRUCell, "rnn": RNNCell}

# One entry per layer: (h, c) for an LSTM, (h,) for the other cells; each batch x hidden.
DecoderState = list[tuple[torch.Tensor, ...]]


class Memory(NamedTuple):
    """What the decoder needs from the encoder; every field has the batch first."""

    annotations: torch.Tensor  # batch x src_len x enc
    projected_keys: Optional[torch.Tensor]  # batch x src_len x attn (None without attention)
    mask: torch.Tensor  # batch x src_len, True at real tokens
    summary: torch.Tensor  # batch x enc

    def select(self, index: torch.Tensor) -> "Memory":
        """Rows `index` of every field (for dropping or repeating sentences in search)."""
        return Memory(*(None if t is None else t.index_select(0, index) for t in self))


def select_state(state: DecoderState, index: torch.Tensor) -> DecoderState:
    return [tuple(t.index_select(0, index) for t in layer) for layer in state]


class Decoder(nn.Module):
    """Deep RNN decoder conditioned on state, context and previous output word."""

    def __init__(self, vocab_size: int, encoder_size: int, config: ModelConfig):
        super().__init__()
        self.is_lstm = config.cell == "lstm"
        self.num_layers = config.decoder_layers
        self.hidden_size = config.decoder_hidden_size
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=PAD)
        self.dropout = Dropout(config.dropout)
        self.attention = (AdditiveAttention(encoder_size, self.hidden_size, config.attention_size)
                          if config.attention == "additive" else None)
        states_per_layer = 2 if self.is_lstm else 1
        self.bridge = Linear(encoder_size, states_per_layer * self.num_layers * self.hidden_size)
        self.input_prev_word = config.decoder_input_prev_word
        self.input_context = config.decoder_input_context
        input_size = ((config.embedding_size if self.input_prev_word else 0)
                      + (encoder_size if self.input_context else 0))
        cell_class = CELL_CLASSES[config.cell]
        self.cells = nn.ModuleList(
            cell_class(input_size if i == 0 else self.hidden_size, self.hidden_size)
            for i in range(self.num_layers))
        self.pre_output = Linear(self.hidden_size + encoder_size + config.embedding_size,
                                    config.output_size)
        self.output = Linear(config.output_size, vocab_size)
        if config.tie_target_embeddings:
            self.output.weight = self.embedding.weight

    def prepare(self, annotations: torch.Tensor, summary: torch.Tensor,
                mask: torch.Tensor) -> tuple[Memory, DecoderState]:
        """Project attention keys once per sentence and bridge to the initial state."""
        keys = self.attention.project_keys(annotations) if self.attention is not None else None
        memory = Memory(annotations, keys, mask, summary)
        bridged = torch.tanh(self.bridge(summary))  # batch x (states * layers * hidden)
        parts = bridged.split(self.hidden_size, dim=1)
        per_layer = 2 if self.is_lstm else 1
        state = [tuple(parts[i * per_layer:(i + 1) * per_layer]) for i in range(self.num_layers)]
        return memory, state

    def step(self, embedded: torch.Tensor, state: DecoderState, memory: Memory
             ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], DecoderState]:
        """One step from the previous word's embedding (batch x emb).

        Returns s_t (batch x hidden), c_t (batch x enc), the attention weights
        (batch x src_len; None without attention) and the new state.
        """
        if self.attention is not None:
            context, weights = self.attention(state[-1][0], memory.projected_keys,
                                              memory.annotations, memory.mask)
        else:
            context, weights = memory.summary, None
        inputs = (([embedded] if self.input_prev_word else [])
                  + ([context] if self.input_context else []))
        layer_input = torch.cat(inputs, dim=1) if inputs else embedded[:, :0]  # batch x 0: none
        new_state = []
        for i, cell in enumerate(self.cells):
            if i > 0:
                layer_input = self.dropout(layer_input)
            output = cell(layer_input, state[i] if self.is_lstm else state[i][0])
            layer_state = output if self.is_lstm else (output,)
            new_state.append(layer_state)
            layer_input = layer_state[0]
        return layer_input, context, weights, new_state

    def logits(self, hidden: torch.Tensor, context: torch.Tensor,
               embedded: torch.Tensor) -> torch.Tensor:
        """Vocabulary scores from [s_t; c_t; E y_{t-1}] (any leading dims)."""
        pre = torch.tanh(self.pre_output(torch.cat([hidden, context, embedded], dim=-1)))
        return self.output(self.dropout(pre))

    def forward(self, tgt_in: torch.Tensor, memory: Memory, state: DecoderState
                ) -> torch.Tensor:
        """Teacher-forced scores for `tgt_in` (batch x tgt_len, BOS first): batch x tgt_len x V."""
        embedded = self.dropout(self.embedding(tgt_in))  # batch x tgt_len x emb
        hiddens, contexts = [], []
        # unbind, not embedded[:, t]: the backward of each such slice is a zero-filled
        # batch x tgt_len x emb tensor, added into the gradient (quadratic in tgt_len).
        for embedded_t in embedded.unbind(1):
            hidden, context, _, state = self.step(embedded_t, state, memory)
            hiddens.append(hidden)
            contexts.append(context)
        # The output layer runs once over all steps: one large matmul instead of tgt_len small ones.
        return self.logits(torch.stack(hiddens, 1), torch.stack(contexts, 1), embedded)
