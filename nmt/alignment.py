"""Word alignments from attention, in Pharaoh format (``i-j``: source word i, target word j).

SentencePiece marks the first piece of every whitespace word with "▁", so the
pieces group into the words of the detokenised text. Each target word is
aligned to the source word that receives most of its pieces' attention, as
alignment from attention is usually extracted (the EOS row is left out).
"""

from __future__ import annotations

from typing import Sequence

import torch

WORD_START = "\u2581"


def word_index(pieces: Sequence[str]) -> list[int]:
    """The whitespace word each piece belongs to (0-based)."""
    words, current = [], -1
    for piece in pieces:
        if piece.startswith(WORD_START) or current < 0:
            current += 1
        words.append(current)
    return words


def pharaoh_alignment(attention: torch.Tensor, source_pieces: Sequence[str],
                      target_pieces: Sequence[str]) -> str:
    """``"0-0 1-2 ..."`` from a (target pieces [+ EOS]) x source pieces attention matrix."""
    if not source_pieces or not target_pieces:
        return ""
    source_words = torch.tensor(word_index(source_pieces))
    target_words = torch.tensor(word_index(target_pieces))
    weights = attention[:len(target_pieces), :len(source_pieces)].double()
    # Sum the pieces' attention into words: target words x source words.
    by_source = torch.zeros(len(target_pieces), int(source_words[-1]) + 1, dtype=torch.double)
    by_source.index_add_(1, source_words, weights)
    by_word = torch.zeros(int(target_words[-1]) + 1, by_source.size(1), dtype=torch.double)
    by_word.index_add_(0, target_words, by_source)
    best_source = by_word.argmax(dim=1).tolist()
    return " ".join(f"{i}-{j}" for j, i in enumerate(best_source))
