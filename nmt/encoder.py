"""The deep recurrent encoder: bidirectional by default, optionally reading the source reversed."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.config import ModelConfig
from nmt.layers import Dropout, dropout
from nmt.vocabulary import PAD

RNN_CLASSES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
# One layer, one direction of each nn.RNNBase mode, as nn.LSTM and the others call them.
RECURRENCES = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh,
               "RNN_RELU": torch.rnn_relu}


def reversed_positions(lengths: torch.Tensor, length: int, device: torch.device
                       ) -> torch.Tensor:
    """batch x length: where each position of a row reversed within its length reads from
    (padding positions read themselves)."""
    positions = torch.arange(length, device=device).unsqueeze(0)
    lengths = lengths.to(device).unsqueeze(1)
    return torch.where(positions < lengths, lengths - 1 - positions, positions)


def gather_positions(tensor: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rows of `tensor` (batch x len x ...) reordered along len by `positions` (batch x len)."""
    if tensor.dim() > 2:
        positions = positions.view(*positions.shape, *[1] * (tensor.dim() - 2))
        positions = positions.expand_as(tensor)
    return tensor.gather(1, positions)


def reverse_padded(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first `lengths[b]` positions of each row (batch x len x ...); padding
    stays at the end."""
    return gather_positions(tokens, reversed_positions(lengths, tokens.size(1), tokens.device))


def run_padded(rnn: nn.RNNBase, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """What `rnn` gives for the packed `inputs` (batch x len x in, batch first), padded
    with zeros, computed on whole padded tensors, layer by layer and direction by direction.

    PyTorch runs packed sequences of unequal lengths with its own per-step loop, and
    whole tensors with oneDNN's LSTM kernels (cuDNN's on a GPU): for the reference
    encoder on a 64-sentence batch, 90 against 48 ms forward and backward. Padding
    comes after each sentence's tokens, so the forward direction reaches it only after
    them, and the backward direction reads each sentence reversed within its length.
    """
    recurrence = RECURRENCES[rnn.mode]
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[:4 if rnn.bias else 2]
    reverse = reversed_positions(lengths, inputs.size(1), inputs.device)  # once per batch
    zeros = inputs.new_zeros(1, inputs.size(0), rnn.hidden_size)
    initial = (zeros, zeros) if rnn.mode == "LSTM" else zeros
    layer_input = inputs
    for layer in range(rnn.num_layers):
        if layer > 0:
            layer_input = dropout(layer_input, rnn.dropout, rnn.training)
        outputs = []
        for suffix in ("", "_reverse") if rnn.bidirectional else ("",):
            weights = [getattr(rnn, f"{name}_l{layer}{suffix}") for name in names]
            source = gather_positions(layer_input, reverse) if suffix else layer_input
            output = recurrence(source, initial, weights, rnn.bias, 1, 0.0, rnn.training,
                                False, True)[0]
            outputs.append(gather_positions(output, reverse) if suffix else output)
        layer_input = torch.cat(outputs, dim=2)
    real = torch.arange(inputs.size(1), device=inputs.device) < lengths.to(inputs.device)[:, None]
    return layer_input * real.unsqueeze(2)


class Encoder(nn.Module):
    """Embeds the source and runs a multi-layer RNN over it, bidirectional unless configured off.

    Each sentence is read within its own length (see `run_padded`), so its encoding
    does not depend on the other sentences of its batch.
    """

    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        self.reverse_source = config.reverse_source
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=PAD)
        self.dropout = Dropout(config.dropout)
        self.rnn = RNN_CLASSES[config.cell](
            config.embedding_size, config.encoder_hidden_size,
            num_layers=config.encoder_layers, bidirectional=config.bidirectional,
            batch_first=True, dropout=config.dropout if config.encoder_layers > 1 else 0.0)
        self.bidirectional = config.bidirectional
        self.output_size = (2 if config.bidirectional else 1) * config.encoder_hidden_size

    def forward(self, src: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode `src` (batch x src_len ids, padded with PAD) of true `lengths`.

        Returns the annotations h_j = [fwd_j; bwd_j] (batch x src_len x 2H, zero at
        padding) and the summary [fwd_n; bwd_1] of the top layer (batch x 2H); without
        the backward direction, h_j = fwd_j and the summary is fwd_n (H wide).
        """
        if self.reverse_source:
            src = reverse_padded(src, lengths)
        embedded = self.dropout(self.embedding(src))  # batch x src_len x emb
        if isinstance(self.rnn, nn.RNNBase):
            annotations = run_padded(self.rnn, embedded, lengths)
        else:  # a layer swapped in for PyTorch's (int8) takes packed sequences
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            annotations, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True,
                                                 total_length=src.size(1))
        # The top layer's final states: the forward direction's at the last real
        # token, the backward direction's at the first.
        last = (lengths.to(src.device) - 1).view(-1, 1, 1).expand(-1, 1, annotations.size(2))
        summary = annotations.gather(1, last).squeeze(1)
        if self.bidirectional:
            hidden = self.output_size // 2
            summary = torch.cat([summary[:, :hidden], annotations[:, 0, hidden:]], dim=1)
        return annotations, summary
