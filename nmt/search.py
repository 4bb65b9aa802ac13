"""Greedy search, beam search and forced decoding over the decode-step interface.

Search sees a model only through `nmt.decode_step.DecodeStep`, so one model and
an ensemble are searched alike. Both searches drop a sentence from the active
batch as soon as it is finished, so the cost of a batch follows its sentences'
own lengths, not its longest one's. PAD and BOS can never be output, and a
hypothesis that reaches the length limit is given EOS at its last step, so every
finished hypothesis is scored the same way: its log-probability, EOS included,
divided by the GNMT length penalty of its length (EOS counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from nmt.data import pad_sources
from nmt.decode_step import DecodeStep, ModelStep
from nmt.model import Seq2Seq
from nmt.vocabulary import BOS, EOS, PAD


@dataclass
class Hypothesis:
    """One output of search, in model ids."""

    tokens: list[int]  # without BOS and EOS
    score: float  # what search ranks by: sum(token_logprobs) / length_penalty
    token_logprobs: list[float]  # one per token, then one for EOS
    attention: Optional[torch.Tensor] = None  # (len(tokens) + 1) x src_len, the EOS row last
    reached_limit: bool = False  # EOS was forced at the length limit

    @property
    def logprob(self) -> float:
        return sum(self.token_logprobs)


def max_output_lengths(src_lengths: torch.Tensor, ratio: float) -> torch.Tensor:
    """The longest output (in pieces, EOS included) allowed for each source."""
    return (src_lengths.float() * ratio).long() + 10


def length_penalty(length: torch.Tensor | int, alpha: float) -> torch.Tensor | float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6) ** alpha; scores are divided by it."""
    return ((5.0 + length) / 6.0) ** alpha


def restrict(log_probs: torch.Tensor, at_limit: Optional[torch.Tensor]) -> torch.Tensor:
    """Forbid PAD and BOS everywhere, and everything but EOS in rows `at_limit` (in place)."""
    log_probs[:, PAD] = float("-inf")
    log_probs[:, BOS] = float("-inf")
    if at_limit is not None:
        log_probs[at_limit, :EOS] = float("-inf")
        log_probs[at_limit, EOS + 1:] = float("-inf")
    return log_probs


def _at_limit(step: int, limits: list[int], per_row: int, device) -> Optional[torch.Tensor]:
    """Rows whose next piece is their last allowed one (None if there are none)."""
    if min(limits) > step + 1:
        return None
    flags = torch.tensor([step + 1 >= limit for limit in limits], device=device)
    return flags.repeat_interleave(per_row) if per_row > 1 else flags


@torch.inference_mode()
def greedy_search(step: DecodeStep, src: torch.Tensor, src_lengths: torch.Tensor,
                  max_length_ratio: float = 2.0, alpha: float = 1.0,
                  attention: bool = False) -> list[Hypothesis]:
    """Pick the most probable piece at each step until EOS (forced at the length limit)."""
    batch_size, device = src.size(0), src.device
    state = step.start(src, src_lengths)
    limits = max_output_lengths(src_lengths, max_length_ratio).tolist()
    tokens: list[list[int]] = [[] for _ in range(batch_size)]
    logprobs: list[list[float]] = [[] for _ in range(batch_size)]
    rows_of_attention: list[list[torch.Tensor]] = [[] for _ in range(batch_size)]
    active = list(range(batch_size))  # rows of the current batch -> sentence index
    prev = torch.full((batch_size,), BOS, dtype=torch.long, device=device)
    t = 0
    while active:
        log_probs, weights, state = step.advance(prev, state)
        restrict(log_probs, _at_limit(t, [limits[s] for s in active], 1, device))
        best, prev = log_probs.max(dim=1)
        keep = []
        for row, (sentence, token, logprob) in enumerate(zip(active, prev.tolist(),
                                                             best.tolist())):
            logprobs[sentence].append(logprob)
            if attention and weights is not None:
                rows_of_attention[sentence].append(weights[row])
            if token != EOS:
                tokens[sentence].append(token)
                keep.append(row)
        t += 1
        if len(keep) < len(active):
            index = torch.tensor(keep, dtype=torch.long, device=device)
            state, prev = step.select(state, index), prev[index]
            active = [active[row] for row in keep]
    hypotheses = []
    for sentence in range(batch_size):
        length = len(logprobs[sentence])
        matrix = None
        if rows_of_attention[sentence]:
            matrix = torch.stack(rows_of_attention[sentence])[:, :int(src_lengths[sentence])]
        hypotheses.append(Hypothesis(tokens[sentence],
                                     sum(logprobs[sentence]) / length_penalty(length, alpha),
                                     logprobs[sentence], matrix, length >= limits[sentence]))
    return hypotheses


@torch.inference_mode()
def beam_search(step: DecodeStep, src: torch.Tensor, src_lengths: torch.Tensor,
                beam_size: int = 5, alpha: float = 1.0, max_length_ratio: float = 2.0,
                n_best: int = 1, attention: bool = False) -> list[list[Hypothesis]]:
    """Keep the `beam_size` best prefixes of every sentence, all in one tensor.

    At each step the 2k best extensions of a sentence are ranked; those among the
    first k that end in EOS become finished hypotheses, the k best others stay
    alive. A sentence is done when it has k finished hypotheses (at the length
    limit all of its prefixes are given EOS, so it has them then) and leaves the
    batch. Returns the `n_best` best finished hypotheses of each sentence, best
    first. Each keeps its own history (pieces, log-probabilities and attention)
    through the beam's reordering. With k = 1 this is exactly greedy search.
    """
    k = beam_size
    batch_size, device = src.size(0), src.device
    src_len = src.size(1)
    state = step.start(src, src_lengths)
    limits = max_output_lengths(src_lengths, max_length_ratio).tolist()

    finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
    active = list(range(batch_size))
    scores = torch.full((batch_size, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: let only the first one extend
    # Histories of the live prefixes: n x k x t (and n x k x t x src_len for attention).
    history = torch.empty((batch_size, k, 0), dtype=torch.long, device=device)
    history_logprobs = torch.empty((batch_size, k, 0), device=device)
    history_attention = torch.empty((batch_size, k, 0, src_len), device=device)
    # The k beams of a sentence are identical until its first piece: one row computes it.
    prev = torch.full((batch_size,), BOS, dtype=torch.long, device=device)
    t = 0
    while active:
        n = len(active)
        log_probs, weights, state = step.advance(prev, state)
        if t == 0:
            beams = torch.arange(batch_size, device=device).repeat_interleave(k)
            log_probs, state = log_probs.index_select(0, beams), step.select(state, beams)
            weights = None if weights is None else weights.index_select(0, beams)
        restrict(log_probs, _at_limit(t, [limits[s] for s in active], k, device))
        vocab = log_probs.size(1)
        candidates = (scores.unsqueeze(2) + log_probs.view(n, k, vocab)).view(n, k * vocab)
        top_scores, top_ids = candidates.topk(min(2 * k, k * vocab), dim=1)  # n x 2k
        top_logprobs = log_probs.view(n, k * vocab).gather(1, top_ids)
        origins, tokens = top_ids // vocab, top_ids % vocab
        keep_attention = attention and weights is not None
        if keep_attention:
            weights = weights.view(n, k, src_len)

        # Finish the EOS candidates ranked among the first k.
        ends = (tokens[:, :k] == EOS) & torch.isfinite(top_scores[:, :k])
        if ends.any():  # (lists first: one device sync rather than one per hypothesis)
            penalty = length_penalty(t + 1, alpha)
            end_scores, end_origins = top_scores[:, :k].tolist(), origins[:, :k].tolist()
            end_logprobs = top_logprobs[:, :k].tolist()
            for row, rank in ends.nonzero().tolist():
                sentence, origin = active[row], end_origins[row][rank]
                matrix = None
                if keep_attention:
                    matrix = torch.cat([history_attention[row, origin],
                                        weights[row, origin].unsqueeze(0)])
                    matrix = matrix[:, :int(src_lengths[sentence])]
                finished[sentence].append(Hypothesis(
                    history[row, origin].tolist(), end_scores[row][rank] / penalty,
                    history_logprobs[row, origin].tolist() + [end_logprobs[row][rank]],
                    matrix, t + 1 >= limits[sentence]))

        # The k best non-EOS candidates stay alive.
        alive_scores = top_scores.masked_fill(tokens == EOS, float("-inf"))
        scores, ranks = alive_scores.topk(k, dim=1)  # n x k
        origins, tokens = origins.gather(1, ranks), tokens.gather(1, ranks)
        chosen_logprobs = top_logprobs.gather(1, ranks)
        by_origin = origins.unsqueeze(2).expand(-1, -1, t)
        history = torch.cat([history.gather(1, by_origin), tokens.unsqueeze(2)], dim=2)
        history_logprobs = torch.cat([history_logprobs.gather(1, by_origin),
                                      chosen_logprobs.unsqueeze(2)], dim=2)
        if keep_attention:
            history_attention = torch.cat([
                history_attention.gather(1, by_origin.unsqueeze(3).expand(-1, -1, -1, src_len)),
                weights.gather(1, origins.unsqueeze(2).expand(-1, -1, src_len)).unsqueeze(2)],
                dim=2)
        t += 1

        keep = [row for row, sentence in enumerate(active)
                if len(finished[sentence]) < k and t < limits[sentence]]
        rows = torch.tensor(keep, dtype=torch.long, device=device)
        first_beam = rows.unsqueeze(1) * k  # len(keep) x 1: each kept sentence's first beam row
        index = (first_beam + origins[rows]).view(-1)
        # The beams of one sentence share its source rows: they move only when sentences leave.
        state = step.reorder(state, index) if len(keep) == n else step.select(state, index)
        scores, history, prev = scores[rows], history[rows], tokens[rows].view(-1)
        history_logprobs = history_logprobs[rows]
        if keep_attention:
            history_attention = history_attention[rows]
        active = [active[row] for row in keep]

    return [sorted(hypotheses, key=lambda h: -h.score)[:n_best] for hypotheses in finished]


@torch.inference_mode()
def force_decode(step: DecodeStep, src: torch.Tensor, src_lengths: torch.Tensor,
                 targets: Sequence[Sequence[int]], alpha: float = 1.0,
                 attention: bool = False) -> list[Hypothesis]:
    """Score given targets (ids without EOS): the model's log-probability of each piece.

    Nothing is restricted: the result is the model's own probability of the pair,
    the quantity training minimises.
    """
    batch_size, device = src.size(0), src.device
    width = max(len(t) for t in targets) + 1
    tgt_in = torch.full((batch_size, width), PAD, dtype=torch.long)
    tgt_out = torch.full((batch_size, width), PAD, dtype=torch.long)
    for row, target in enumerate(targets):
        tgt_in[row, :len(target) + 1] = torch.tensor([BOS, *target], dtype=torch.long)
        tgt_out[row, :len(target) + 1] = torch.tensor([*target, EOS], dtype=torch.long)
    tgt_in, tgt_out = tgt_in.to(device), tgt_out.to(device)
    state = step.start(src, src_lengths)
    logprobs, rows_of_attention = [], []
    for t in range(width):  # finished rows read PAD and are ignored
        log_probs, weights, state = step.advance(tgt_in[:, t], state)
        logprobs.append(log_probs.gather(1, tgt_out[:, t:t + 1]).squeeze(1))
        if attention and weights is not None:
            rows_of_attention.append(weights)
    logprobs = torch.stack(logprobs, 1).tolist()  # batch x width
    matrices = torch.stack(rows_of_attention, 1) if rows_of_attention else None
    hypotheses = []
    for row, target in enumerate(targets):
        length = len(target) + 1
        matrix = None
        if matrices is not None:
            matrix = matrices[row, :length, :int(src_lengths[row])]
        piece_logprobs = logprobs[row][:length]
        hypotheses.append(Hypothesis(list(target), sum(piece_logprobs) /
                                     length_penalty(length, alpha), piece_logprobs, matrix))
    return hypotheses


def search_batches(step: DecodeStep, sources: Sequence[Sequence[int]], beam_size: int,
                   alpha: float, max_length_ratio: float, batch_size: int,
                   device: torch.device | str = "cpu", n_best: int = 1, attention: bool = False,
                   targets: Optional[Sequence[Sequence[int]]] = None,
                   progress: Optional[Callable[[int], None]] = None) -> list[list[Hypothesis]]:
    """Search (or, given `targets`, force-decode) in length-sorted batches, in input order.

    Empty sources give one empty hypothesis without running the model (unless forced).
    `progress`, if given, is called with the number of sentences done after each batch.
    """
    empty = Hypothesis([], 0.0, [], torch.zeros(0, 0) if attention else None)
    outputs: list[list[Hypothesis]] = [[empty] for _ in sources]
    # (Forced decoding scores every pair: an empty source is read as EOS alone.)
    order = sorted((i for i, s in enumerate(sources) if s or targets is not None),
                   key=lambda i: len(sources[i]))
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        src, lengths = pad_sources([torch.tensor(sources[i], dtype=torch.long) for i in indices])
        src, lengths = src.to(device), lengths.to(device)
        if targets is not None:
            results = [[h] for h in force_decode(step, src, lengths, [targets[i] for i in indices],
                                                 alpha, attention)]
        elif beam_size == 1:
            results = [[h] for h in greedy_search(step, src, lengths, max_length_ratio, alpha,
                                                  attention)]
        else:
            results = beam_search(step, src, lengths, beam_size, alpha, max_length_ratio,
                                  n_best, attention)
        for i, result in zip(indices, results):
            outputs[i] = result
        if progress is not None:
            progress(len(indices))
    return outputs


def translate_ids(model: Seq2Seq, sources: Sequence[Sequence[int]], beam_size: int, alpha: float,
                  max_length_ratio: float, batch_size: int,
                  device: torch.device | str = "cpu") -> list[list[int]]:
    """The best output ids of one model for each source (as validation needs them)."""
    results = search_batches(ModelStep(model), sources, beam_size, alpha, max_length_ratio,
                             batch_size, device)
    return [result[0].tokens for result in results]
