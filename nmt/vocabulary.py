"""Subword vocabulary: a SentencePiece model whose ids are the model's ids.

Every SentencePiece model this project trains reserves the same four ids, so
code elsewhere can use the constants below without asking the model.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Iterable, Sequence

import sentencepiece as spm

from nmt.config import SentencePieceConfig
from nmt.errors import NmtError

PAD, UNK, BOS, EOS = 0, 1, 2, 3

_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]+")


def normalize(text: str, lowercase: bool = False) -> str:
    """NFC-normalise, turn control characters and runs of whitespace into one space."""
    text = _CONTROL_OR_SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    return text.lower() if lowercase else text


class Vocabulary:
    """Maps text to piece ids and back; built from a serialized SentencePiece model."""

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        if (self._sp.pad_id(), self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id()) != (
                PAD, UNK, BOS, EOS):
            raise NmtError("SentencePiece model was not trained by nmt "
                           "(expected ids pad=0 unk=1 bos=2 eos=3)")

    @classmethod
    def from_file(cls, path: str | Path) -> "Vocabulary":
        try:
            return cls(Path(path).read_bytes())
        except OSError as error:
            raise NmtError(f"{path}: cannot read SentencePiece model: {error.strerror}") from None

    def __len__(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Piece ids of each (already normalised) text, without BOS/EOS."""
        return self._sp.encode(list(texts))

    def decode(self, ids: Sequence[int]) -> str:
        return self._sp.decode([i for i in ids if i > EOS or i == UNK])

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self._sp.id_to_piece(i) for i in ids]


def train_sentencepiece(inputs: Iterable[Path], model_prefix: Path,
                        config: SentencePieceConfig) -> Vocabulary:
    """Train a SentencePiece model on text files; it samples, so memory stays bounded."""
    try:
        spm.SentencePieceTrainer.train(
            input=",".join(str(p) for p in inputs),
            model_prefix=str(model_prefix),
            vocab_size=config.vocab_size,
            model_type=config.model_type,
            character_coverage=config.character_coverage,
            input_sentence_size=config.input_sentence_size,
            shuffle_input_sentence=True,
            pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
    except RuntimeError as error:
        message = str(error).splitlines()[-1] if str(error) else "failed"
        raise NmtError(f"sentencepiece: {message} "
                       "(lower sentencepiece.vocab_size for a small corpus)") from None
    return Vocabulary.from_file(f"{model_prefix}.model")
