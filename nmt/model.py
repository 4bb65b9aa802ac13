"""The encoder-decoder translation model and its training loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nmt.config import ModelConfig
from nmt.decoder import Decoder, DecoderState, Memory
from nmt.encoder import Encoder
from nmt.vocabulary import PAD


class Seq2Seq(nn.Module):
    """p(y | x) = prod_t p(y_t | y_<t, x) with a recurrent encoder and attentional decoder."""

    def __init__(self, config: ModelConfig, src_vocab_size: int, tgt_vocab_size: int):
        super().__init__()
        self.config = config
        self.encoder = Encoder(src_vocab_size, config)
        self.decoder = Decoder(tgt_vocab_size, self.encoder.output_size, config)
        if config.share_encoder_decoder:
            share_recurrent_weights(self.encoder.rnn, self.decoder.cells)
        if config.init_range > 0:
            # uniform(-0.1, 0.1) trains much faster early on than PyTorch's defaults
            # (see shared/bench: JoeyNMT's val ppl after 150 steps, 143.6 vs 63.6).
            for parameter in self.parameters():
                nn.init.uniform_(parameter, -config.init_range, config.init_range)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor
               ) -> tuple[Memory, DecoderState]:
        """Encode a padded batch; returns the decoder's memory and initial state."""
        annotations, summary = self.encoder(src, src_lengths)
        mask = src != PAD
        return self.decoder.prepare(annotations, summary, mask)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor,
                tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced vocabulary scores: batch x tgt_len x tgt_vocab."""
        memory, state = self.encode(src, src_lengths)
        return self.decoder(tgt_in, memory, state)


def share_recurrent_weights(encoder_rnn: nn.RNNBase, decoder_cells: nn.ModuleList) -> None:
    """Extension 1 off: decoder layer i uses the W_hh and b_hh of encoder layer i.

    Seed 000 (eq. 23-24) defines the extension as separate W_hh matrices; the input
    weights cannot be shared, since encoder and decoder read inputs of other sizes.
    With a bidirectional encoder the forward direction is shared.
    """
    for i, cell in enumerate(decoder_cells):
        cell.weight_hh = getattr(encoder_rnn, f"weight_hh_l{i}")
        cell.bias_hh = getattr(encoder_rnn, f"bias_hh_l{i}")


def token_nll(logits: torch.Tensor, tgt_out: torch.Tensor,
              label_smoothing: float = 0.0) -> torch.Tensor:
    """Summed cross-entropy over real (non-PAD) target tokens."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), tgt_out.reshape(-1),
                           ignore_index=PAD, reduction="sum", label_smoothing=label_smoothing)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
