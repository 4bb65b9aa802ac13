"""The decode-step interface: all that search knows of a model.

Search starts a batch from encoded sources, advances it one target piece at a
time, and selects or reorders its rows (dropping finished sentences, following
the beam). `ModelStep` does this for one `Seq2Seq`; `EnsembleStep` for several
models at once, averaging their probabilities. Search never touches encoders,
decoders or their states, so anything with these three methods can be searched.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

import torch

from nmt.decoder import DecoderState, Memory, select_state
from nmt.encoder import reverse_padded
from nmt.model import Seq2Seq


class DecodeStep(Protocol):
    """One search step over a batch of rows (sentences, or sentences x beams)."""

    def start(self, src: torch.Tensor, src_lengths: torch.Tensor) -> Any:
        """Encode `src` (batch x src_len, padded) and return the initial state."""

    def advance(self, prev_tokens: torch.Tensor, state: Any
                ) -> tuple[torch.Tensor, Optional[torch.Tensor], Any]:
        """Feed the previous pieces (batch); return log p(y_t | y_<t, x) (batch x V, float32),
        the attention weights (batch x src_len, in the source's original order; None
        without attention) and the next state."""

    def select(self, state: Any, index: torch.Tensor) -> Any:
        """Rows `index` of the state (repeat, drop or reorder rows)."""

    def reorder(self, state: Any, index: torch.Tensor) -> Any:
        """Like `select`, for an `index` that only moves rows among those sharing a
        source (the beams of one sentence): the source side need not move."""


@dataclass
class ModelState:
    memory: Memory
    decoder: DecoderState
    src_lengths: torch.Tensor  # batch: to map reversed-source attention back


class ModelStep:
    """The decode-step interface of one model (in eval mode)."""

    def __init__(self, model: Seq2Seq):
        self.model = model

    @property
    def target_vocab_size(self) -> int:
        return self.model.decoder.output.out_features

    def start(self, src: torch.Tensor, src_lengths: torch.Tensor) -> ModelState:
        memory, state = self.model.encode(src, src_lengths)
        return ModelState(memory, state, src_lengths.to(src.device))

    def advance(self, prev_tokens: torch.Tensor, state: ModelState
                ) -> tuple[torch.Tensor, Optional[torch.Tensor], ModelState]:
        decoder = self.model.decoder
        embedded = decoder.embedding(prev_tokens)  # batch x emb
        hidden, context, weights, new_state = decoder.step(embedded, state.decoder, state.memory)
        log_probs = torch.log_softmax(decoder.logits(hidden, context, embedded).float(), dim=-1)
        if weights is not None:
            weights = weights.float()
            if self.model.config.reverse_source:  # the encoder read position n-1-j as j
                weights = reverse_padded(weights, state.src_lengths)
        return log_probs, weights, ModelState(state.memory, new_state, state.src_lengths)

    def select(self, state: ModelState, index: torch.Tensor) -> ModelState:
        return ModelState(state.memory.select(index), select_state(state.decoder, index),
                          state.src_lengths.index_select(0, index))

    def reorder(self, state: ModelState, index: torch.Tensor) -> ModelState:
        return ModelState(state.memory, select_state(state.decoder, index), state.src_lengths)


class EnsembleStep:
    """Several models as one: log of the mean of their probabilities, mean attention.

    The members must share the source and target vocabularies (the caller checks).
    """

    def __init__(self, members: Sequence[ModelStep]):
        self.members = list(members)
        self._log_count = math.log(len(self.members))

    @property
    def target_vocab_size(self) -> int:
        return self.members[0].target_vocab_size

    def start(self, src: torch.Tensor, src_lengths: torch.Tensor) -> list[ModelState]:
        return [member.start(src, src_lengths) for member in self.members]

    def advance(self, prev_tokens: torch.Tensor, state: list[ModelState]
                ) -> tuple[torch.Tensor, Optional[torch.Tensor], list[ModelState]]:
        outputs = [member.advance(prev_tokens, s) for member, s in zip(self.members, state)]
        # log(mean p) pairwise with logaddexp: at beam 5 logsumexp over a stacked copy
        # took 5.5 ms a step against 0.95 ms, a fifth of one model's whole step.
        log_probs = functools.reduce(torch.logaddexp, [o[0] for o in outputs])
        log_probs = log_probs.sub_(self._log_count)
        weights = [o[1] for o in outputs if o[1] is not None]
        attention = torch.stack(weights).mean(0) if weights else None
        return log_probs, attention, [o[2] for o in outputs]

    def select(self, state: list[ModelState], index: torch.Tensor) -> list[ModelState]:
        return [member.select(s, index) for member, s in zip(self.members, state)]

    def reorder(self, state: list[ModelState], index: torch.Tensor) -> list[ModelState]:
        return [member.reorder(s, index) for member, s in zip(self.members, state)]
