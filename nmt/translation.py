"""The Python API for translation: `Translator`, returning typed results.

    from nmt import Translator
    translator = Translator.load("runs/multi30k_de-en/best.pt", device="cpu")
    [result] = translator.translate(["Ein Hund läuft."], beam=5, n_best=2, attention=True)
    print(result.hypotheses[0].text, result.hypotheses[0].score)

The CLI, the server, the plots and the ablation all translate through it.
Several checkpoints make an ensemble (their probabilities averaged at each step).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import torch

from nmt.alignment import pharaoh_alignment
from nmt.checkpoint import Checkpoint, load_checkpoint
from nmt.config import DecodingConfig
from nmt.decode_step import EnsembleStep, ModelStep
from nmt.device import resolve_device, resolve_precision
from nmt.errors import NmtError
from nmt.quantize import quantize_int8
from nmt.search import Hypothesis, search_batches
from nmt.vocabulary import normalize

log = logging.getLogger(__name__)

MAX_INPUT_PIECES = 1_000  # longer inputs are cut (with a warning): attention is O(length)
# DecodingConfig's keys as `Translator.translate` (and the server's API) call them
ARGUMENT_NAMES = {"beam_size": "beam", "length_penalty": "alpha"}


@dataclass
class TextHypothesis:
    """One translation of a line, with the model's view of it."""

    text: str
    score: float  # what search ranked by: log-probability / GNMT length penalty
    logprob: float  # log-probability per piece (EOS included)
    pieces: list[str]  # target pieces, without EOS
    piece_logprobs: list[float]  # one per piece, then one for EOS
    reached_limit: bool = False  # cut at the length limit (EOS forced)
    attention: Optional[list[list[float]]] = None  # (pieces + EOS) x source pieces
    alignment: Optional[str] = None  # Pharaoh "i-j" pairs over whitespace words

    @property
    def perplexity(self) -> float:
        return math.exp(-self.logprob) if self.piece_logprobs else 1.0

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["perplexity"] = self.perplexity
        return {key: value for key, value in record.items() if value is not None}


@dataclass
class Translation:
    """Everything for one input line: its pieces and the hypotheses, best first."""

    source: str
    source_pieces: list[str]
    hypotheses: list[TextHypothesis] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as `nmt translate --output-format jsonl` writes it."""
        return {"source": self.source, "source_pieces": self.source_pieces,
                "hypotheses": [h.to_dict() for h in self.hypotheses]}


class Translator:
    """One model, or an ensemble of models, with its vocabularies and search settings."""

    def __init__(self, checkpoints: Sequence[Checkpoint], device: torch.device,
                 precision: str = "auto", decoding: Optional[DecodingConfig] = None,
                 names: Optional[Sequence[str]] = None):
        if not checkpoints:
            raise NmtError("no checkpoint to translate with")
        names = list(names or [f"checkpoint {i + 1}" for i in range(len(checkpoints))])
        first = checkpoints[0]
        for name, other in zip(names[1:], checkpoints[1:]):
            for side in ("src", "tgt"):
                mine, theirs = getattr(first, f"{side}_vocab"), getattr(other, f"{side}_vocab")
                if mine.model_proto != theirs.model_proto or mine.kept != theirs.kept:
                    raise NmtError(f"{name}: its {'source' if side == 'src' else 'target'} "
                                   f"vocabulary differs from {names[0]}'s; the members of an "
                                   "ensemble must share both vocabularies")
        # auto: bf16 where the hardware runs it natively; an explicit choice the
        # hardware lacks is refused here, before any model is built.
        precision = resolve_precision(precision, device, "translation")
        self.checkpoints = list(checkpoints)
        self.device = device
        self.precision = precision
        self.decoding = decoding or first.config.decoding
        self.src_vocab, self.tgt_vocab = first.src_vocab, first.tgt_vocab
        self.lowercase = first.config.data.lowercase
        self.models = []
        for checkpoint in checkpoints:
            model = checkpoint.build_model(device)
            self.models.append(quantize_int8(model) if precision == "int8" else model)
        steps = [ModelStep(model) for model in self.models]
        self.step = steps[0] if len(steps) == 1 else EnsembleStep(steps)

    @classmethod
    def load(cls, paths: str | Path | Sequence[str | Path], device: str = "auto",
             precision: str = "auto", decoding: Optional[DecodingConfig] = None
             ) -> "Translator":
        """Load one checkpoint or several (an ensemble)."""
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        return cls([load_checkpoint(p) for p in paths], resolve_device(device), precision,
                   decoding, [str(p) for p in paths])

    def options(self, names: Mapping[str, str] = ARGUMENT_NAMES,
                **overrides: Any) -> DecodingConfig:
        """The decoding settings with `overrides` (DecodingConfig keys, None values
        ignored), checked; an error calls a key as `names` does (`translate`'s
        arguments unless told otherwise)."""
        decoding = dataclasses.replace(
            self.decoding, **{k: v for k, v in overrides.items() if v is not None})
        for key, problem in decoding.check(names):
            raise NmtError(f"{names.get(key, key)}: {problem}, got {getattr(decoding, key)!r}")
        return decoding

    def translate(self, lines: Sequence[str], beam: Optional[int] = None, n_best: Optional[int] = None,
                  attention: bool = False, alpha: Optional[float] = None,
                  max_length_ratio: Optional[float] = None, batch_size: Optional[int] = None,
                  cut_long_lines: bool = True, first_line_number: int = 1,
                  progress: Optional[Callable[[int], None]] = None) -> list[Translation]:
        """Translate raw lines; one `Translation` per line, in order.

        Lines over `MAX_INPUT_PIECES` pieces are cut with a warning, or with
        `cut_long_lines=False` refused (an `NmtError` naming the line).
        """
        decoding = self.options(beam_size=beam, n_best=n_best, length_penalty=alpha,
                                max_length_ratio=max_length_ratio, batch_size=batch_size)
        self._check_attention(attention)
        sources = self._encode_sources(lines, cut_long_lines, first_line_number)
        with self._autocast():
            results = search_batches(self.step, sources, decoding.beam_size,
                                     decoding.length_penalty, decoding.max_length_ratio,
                                     decoding.batch_size, self.device, decoding.n_best,
                                     attention, progress=progress)
        return self._translations(lines, sources, results, attention, first_line_number,
                                  warn_empty=True)

    def score(self, lines: Sequence[str], targets: Sequence[str], attention: bool = False,
              alpha: Optional[float] = None, batch_size: Optional[int] = None,
              first_line_number: int = 1) -> list[Translation]:
        """Forced decoding: the model's log-probability of each given target line."""
        if len(lines) != len(targets):
            raise NmtError(f"{len(lines)} source lines but {len(targets)} target lines")
        decoding = self.options(length_penalty=alpha, batch_size=batch_size)
        self._check_attention(attention)
        sources = self._encode_sources(lines, False, first_line_number)
        target_ids = self.tgt_vocab.encode([normalize(t, self.lowercase) for t in targets])
        with self._autocast():
            results = search_batches(self.step, sources, 1, decoding.length_penalty,
                                     decoding.max_length_ratio, decoding.batch_size,
                                     self.device, attention=attention, targets=target_ids)
        return self._translations(lines, sources, results, attention, first_line_number,
                                  warn_empty=False)

    def _check_attention(self, attention: bool) -> None:
        if attention and all(c.config.model.attention == "none" for c in self.checkpoints):
            raise NmtError("attention output asked of a model without attention "
                           "(model.attention: none)")

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.precision == "bf16")

    def _encode_sources(self, lines: Sequence[str], cut_long_lines: bool,
                        first_line_number: int) -> list[list[int]]:
        sources = self.src_vocab.encode([normalize(line, self.lowercase) for line in lines])
        for offset, ids in enumerate(sources):
            if len(ids) > MAX_INPUT_PIECES:
                number = first_line_number + offset
                if not cut_long_lines:
                    raise NmtError(f"input line {number}: {len(ids)} pieces, over the limit "
                                   f"of {MAX_INPUT_PIECES}; split the line")
                log.warning("input line %d has %d pieces; translating only the first %d",
                            number, len(ids), MAX_INPUT_PIECES)
                del ids[MAX_INPUT_PIECES:]
        return sources

    def _translations(self, lines: Sequence[str], sources: list[list[int]],
                      results: list[list[Hypothesis]], attention: bool,
                      first_line_number: int, warn_empty: bool) -> list[Translation]:
        translations = []
        for offset, (line, ids, hypotheses) in enumerate(zip(lines, sources, results)):
            source_pieces = self.src_vocab.pieces(ids)
            translation = Translation(line, source_pieces)
            for h in hypotheses:
                pieces = self.tgt_vocab.pieces(h.tokens)
                text = TextHypothesis(
                    self.tgt_vocab.decode(h.tokens), h.score,
                    h.logprob / max(len(h.token_logprobs), 1), pieces, h.token_logprobs,
                    h.reached_limit)
                if attention:
                    matrix = h.attention if h.attention is not None else torch.zeros(0, 0)
                    text.attention = matrix.tolist()
                    text.alignment = pharaoh_alignment(matrix, source_pieces, pieces)
                translation.hypotheses.append(text)
            if warn_empty and ids and not translation.hypotheses[0].text:
                log.warning("input line %d: the model produced an empty translation",
                            first_line_number + offset)
            translations.append(translation)
        return translations
