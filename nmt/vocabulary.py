"""Subword vocabulary: a SentencePiece model whose ids are the model's ids.

Every SentencePiece model this project trains reserves the same four ids, so
code elsewhere can use the constants below without asking the model.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Iterable, Optional, Sequence

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
    """Maps text to the model's ids and back, through a SentencePiece model.

    The model's ids may be a subset of the SentencePiece model's: `kept` lists
    the SentencePiece ids the model knows, in model-id order, the four special
    ids first. With a joint SentencePiece model each side keeps only the pieces
    seen on its side of the training data, which for a joint 8k model about
    halves the target softmax, the largest matrix of the model. Pieces not kept
    map to UNK.
    """

    def __init__(self, model_proto: bytes, kept: Optional[Sequence[int]] = None):
        self.model_proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        if (self._sp.pad_id(), self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id()) != (
                PAD, UNK, BOS, EOS):
            raise NmtError("SentencePiece model was not trained by nmt "
                           "(expected ids pad=0 unk=1 bos=2 eos=3)")
        size = self._sp.get_piece_size()
        self.kept = list(range(size)) if kept is None else list(kept)
        if self.kept[:4] != [PAD, UNK, BOS, EOS] or not all(0 <= i < size for i in self.kept):
            raise NmtError("vocabulary does not match its SentencePiece model")
        self.from_sentencepiece = [UNK] * size  # SentencePiece id -> model id
        for model_id, sp_id in enumerate(self.kept):
            self.from_sentencepiece[sp_id] = model_id

    @classmethod
    def from_file(cls, path: str | Path, kept: Optional[Sequence[int]] = None) -> "Vocabulary":
        try:
            return cls(Path(path).read_bytes(), kept)
        except OSError as error:
            raise NmtError(f"{path}: cannot read SentencePiece model: {error.strerror}") from None

    def __len__(self) -> int:
        return len(self.kept)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Model ids of each (already normalised) text, without BOS/EOS."""
        lookup = self.from_sentencepiece
        return [[lookup[i] for i in ids] for ids in self._sp.encode(list(texts))]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The SentencePiece piece of each model id (special ids as <pad>, <s>, ...)."""
        return [self._sp.id_to_piece(self.kept[i]) for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        return self._sp.decode([self.kept[i] for i in ids if i > EOS or i == UNK])


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
