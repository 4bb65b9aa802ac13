"""The deep recurrent encoder: bidirectional by default, optionally reading the source reversed."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.config import ModelConfig
from nmt.vocabulary import PAD

RNN_CLASSES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def reverse_padded(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first `lengths[b]` tokens of each row; padding stays at the end."""
    positions = torch.arange(tokens.size(1), device=tokens.device).unsqueeze(0)
    lengths = lengths.to(tokens.device).unsqueeze(1)
    source_positions = torch.where(positions < lengths, lengths - 1 - positions, positions)
    return tokens.gather(1, source_positions)


class Encoder(nn.Module):
    """Embeds the source and runs a multi-layer RNN over it, bidirectional unless configured off.

    Padding is handled with packed sequences, so a sentence's encoding does not
    depend on the other sentences of its batch.
    """

    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        self.reverse_source = config.reverse_source
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=PAD)
        self.dropout = nn.Dropout(config.dropout)
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
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        packed_out, final = self.rnn(packed)
        annotations, _ = pad_packed_sequence(packed_out, batch_first=True,
                                             total_length=src.size(1))
        hidden = final[0] if isinstance(final, tuple) else final  # (layers*dirs) x batch x H
        directions = 2 if self.bidirectional else 1
        summary = torch.cat(list(hidden[-directions:]), dim=1)  # top layer: fwd last, bwd first
        return annotations, summary
