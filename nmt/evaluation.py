"""Measuring a model on the dev set: perplexity and greedy BLEU.

Both leave dropout off and change nothing; training decides what to do with
the numbers (see `nmt.policy`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from nmt.config import Config
from nmt.data import ParallelData, make_batch, token_batches
from nmt.model import Seq2Seq, token_nll
from nmt.scoring import corpus_bleu
from nmt.search import translate_ids
from nmt.vocabulary import Vocabulary


@torch.inference_mode()
def dev_perplexity(model: Seq2Seq, data: ParallelData, device: torch.device,
                   config: Config) -> float:
    """exp(cross-entropy per target token, EOS included), never label-smoothed."""
    model.eval()
    total, tokens = 0.0, 0
    for indices in token_batches(data.src_lengths(), data.tgt_lengths(),
                                 4 * config.training.batch_tokens, 1, None):
        batch = make_batch(data, indices).to(device)
        logits = model(batch.src, batch.src_lengths, batch.tgt_in)
        total += token_nll(logits, batch.tgt_out).item()
        tokens += batch.num_tokens
    return math.exp(min(total / tokens, 50))


def dev_bleu(model: Seq2Seq, data: ParallelData, references: Sequence[str],
             tgt_vocab: Vocabulary, device: torch.device, config: Config) -> float:
    """Greedy-decode the dev sources and score them against the raw references.

    With `data.lowercase` the model only ever saw lowercased text, so both sides
    are scored lowercased; see `bleu_description`.
    """
    model.eval()
    sources = [data.src(i).tolist() for i in range(len(data))]
    decoding = config.decoding
    outputs = translate_ids(model, sources, 1, decoding.length_penalty,
                            decoding.max_length_ratio, decoding.batch_size, device)
    return corpus_bleu([tgt_vocab.decode(ids) for ids in outputs], references,
                       lowercase=config.data.lowercase)


def bleu_description(config: Config) -> str:
    """Which BLEU `dev_bleu` is, for logs."""
    return ("greedy, detokenised sacreBLEU, "
            + ("lowercased" if config.data.lowercase else "cased"))
