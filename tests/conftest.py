"""Shared fixtures: tiny models and tiny corpora, all built in memory or tmp_path."""

from __future__ import annotations

import pytest
import torch

from nmt.config import ModelConfig
from nmt.model import Seq2Seq
from nmt.vocabulary import PAD

torch.set_num_threads(1)  # small tensors: threads only add noise and contention


def tiny_config(**overrides) -> ModelConfig:
    sizes = dict(embedding_size=16, encoder_hidden_size=12, encoder_layers=2,
                 decoder_hidden_size=20, decoder_layers=2, attention_size=14,
                 output_size=16, dropout=0.0)
    sizes.update(overrides)
    return ModelConfig(**sizes)


def tiny_model(seed: int = 0, src_vocab: int = 30, tgt_vocab: int = 40, **overrides) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(tiny_config(**overrides), src_vocab, tgt_vocab).eval()


def random_batch(seed: int, lengths: list[int], vocab: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of random real tokens (ids >= 4) with the given lengths."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(4, vocab, (len(lengths), max(lengths)), generator=generator)
    for row, length in enumerate(lengths):
        src[row, length:] = PAD
    return src, torch.tensor(lengths)


@pytest.fixture
def model() -> Seq2Seq:
    return tiny_model()
