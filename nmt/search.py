"""Greedy and beam search, batched over sentences (and beams).

Both drop a sentence from the active batch as soon as it is finished, so the
cost of a batch follows its sentences' own lengths, not its longest one's.
Outputs are piece ids without BOS/EOS, in the order of the input batch.
"""

from __future__ import annotations

import math

import torch

from nmt.data import pad_sources
from nmt.decoder import select_state
from nmt.model import Seq2Seq
from nmt.vocabulary import BOS, EOS


def max_output_lengths(src_lengths: torch.Tensor, ratio: float) -> torch.Tensor:
    """The longest output (in pieces, EOS included) allowed for each source."""
    return (src_lengths.float() * ratio).long() + 10


def length_penalty(length: torch.Tensor | int, alpha: float) -> torch.Tensor | float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6) ** alpha; scores are divided by it."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.inference_mode()
def greedy_search(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor,
                  max_length_ratio: float = 2.0) -> list[list[int]]:
    """Pick the most probable piece at each step until EOS or the length limit."""
    memory, state = model.encode(src, src_lengths)
    limits = max_output_lengths(src_lengths, max_length_ratio).tolist()
    outputs: list[list[int]] = [[] for _ in range(src.size(0))]
    active = list(range(src.size(0)))  # rows of the current batch -> sentence index
    prev = torch.full((src.size(0),), BOS, dtype=torch.long, device=src.device)
    step = 0
    while active:
        log_probs, state = model.decoder.step_log_probs(prev, state, memory)
        prev = log_probs.argmax(dim=1)
        keep = []
        for row, (sentence, token) in enumerate(zip(active, prev.tolist())):
            if token != EOS:
                outputs[sentence].append(token)
            if token != EOS and step + 1 < limits[sentence]:
                keep.append(row)
        step += 1
        if len(keep) < len(active):
            index = torch.tensor(keep, dtype=torch.long, device=src.device)
            memory, state, prev = memory.select(index), select_state(state, index), prev[index]
            active = [active[row] for row in keep]
    return outputs


@torch.inference_mode()
def beam_search(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor,
                beam_size: int = 5, alpha: float = 1.0,
                max_length_ratio: float = 2.0) -> list[list[int]]:
    """Keep the `beam_size` best prefixes of every sentence, all in one tensor.

    At each step the 2k best extensions of a sentence are ranked; those among the
    first k that end in EOS become finished hypotheses (scored by log-probability
    / length penalty), the k best others stay alive. A sentence is done when it
    has k finished hypotheses or reaches its length limit (its live prefixes are
    then finished as they are), and leaves the batch. With k = 1 this is exactly
    greedy search.
    """
    k = beam_size
    batch_size, device = src.size(0), src.device
    memory, state = model.encode(src, src_lengths)
    limits = max_output_lengths(src_lengths, max_length_ratio).tolist()
    expand = torch.arange(batch_size, device=device).repeat_interleave(k)
    memory, state = memory.select(expand), select_state(state, expand)

    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch_size)]
    active = list(range(batch_size))
    scores = torch.full((batch_size, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: let only the first one extend
    history = torch.empty((batch_size, k, 0), dtype=torch.long, device=device)
    prev = torch.full((batch_size * k,), BOS, dtype=torch.long, device=device)
    step = 0
    while active:
        n = len(active)
        log_probs, state = model.decoder.step_log_probs(prev, state, memory)
        vocab = log_probs.size(1)
        candidates = (scores.unsqueeze(2) + log_probs.view(n, k, vocab)).view(n, k * vocab)
        top_scores, top_ids = candidates.topk(min(2 * k, k * vocab), dim=1)  # n x 2k
        origins, tokens = top_ids // vocab, top_ids % vocab

        # Finish the EOS candidates ranked among the first k.
        ends = (tokens[:, :k] == EOS) & torch.isfinite(top_scores[:, :k])
        if ends.any():  # (lists first: one device sync rather than one per hypothesis)
            penalty = length_penalty(step + 1, alpha)
            end_scores, end_origins = top_scores[:, :k].tolist(), origins[:, :k].tolist()
            for row, rank in ends.nonzero().tolist():
                prefix = history[row, end_origins[row][rank]].tolist()
                finished[active[row]].append((end_scores[row][rank] / penalty, prefix))

        # The k best non-EOS candidates stay alive.
        alive_scores = top_scores.masked_fill(tokens == EOS, float("-inf"))
        scores, ranks = alive_scores.topk(k, dim=1)  # n x k
        origins, tokens = origins.gather(1, ranks), tokens.gather(1, ranks)
        history = torch.cat([history.gather(1, origins.unsqueeze(2).expand(-1, -1, step)),
                             tokens.unsqueeze(2)], dim=2)
        step += 1

        keep = []
        for row, sentence in enumerate(active):
            if len(finished[sentence]) >= k:
                continue
            if step >= limits[sentence]:
                penalty = length_penalty(step, alpha)
                for score, prefix in zip(scores[row].tolist(), history[row].tolist()):
                    if math.isfinite(score):
                        finished[sentence].append((score / penalty, prefix))
                continue
            keep.append(row)
        rows = torch.tensor(keep, dtype=torch.long, device=device)
        first_beam = rows.unsqueeze(1) * k  # len(keep) x 1: each kept sentence's first beam row
        state = select_state(state, (first_beam + origins[rows]).view(-1))
        if len(keep) < n:  # the beams of one sentence share its memory rows
            memory = memory.select((first_beam + torch.arange(k, device=device)).view(-1))
        scores, history, prev = scores[rows], history[rows], tokens[rows].view(-1)
        active = [active[row] for row in keep]

    return [max(hypotheses, key=lambda h: h[0])[1] for hypotheses in finished]


def translate_ids(model: Seq2Seq, sources: list[list[int]], beam_size: int, alpha: float,
                  max_length_ratio: float, batch_size: int,
                  device: torch.device | str = "cpu", progress=None) -> list[list[int]]:
    """Translate id sequences in length-sorted batches; outputs keep the input order.

    Empty sources give empty outputs without running the model. `progress`, if
    given, is called with the number of sentences finished after each batch.
    """
    outputs: list[list[int]] = [[] for _ in sources]
    order = sorted((i for i, s in enumerate(sources) if s), key=lambda i: len(sources[i]))
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        src, lengths = pad_sources([torch.tensor(sources[i], dtype=torch.long) for i in indices])
        src, lengths = src.to(device), lengths.to(device)
        if beam_size == 1:
            results = greedy_search(model, src, lengths, max_length_ratio)
        else:
            results = beam_search(model, src, lengths, beam_size, alpha, max_length_ratio)
        for i, result in zip(indices, results):
            outputs[i] = result
        if progress is not None:
            progress(len(indices))
    return outputs
