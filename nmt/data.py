"""Token-id storage on disk, length-bucketed token batches and padded tensors.

`preprocess` writes each split side as two raw little-endian int32 files,
``{split}.{side}.ids`` (all sentences' ids, concatenated) and
``{split}.{side}.lengths`` (one length per sentence); training maps them in
with `torch.from_file` and maps the SentencePiece ids to the model's.
"""

from __future__ import annotations

import array
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

import torch

from nmt.errors import NmtError
from nmt.textio import atomic_write
from nmt.vocabulary import BOS, EOS, PAD, Vocabulary


class IdsWriter:
    """Streams sentences of ids into ``{prefix}.ids`` / ``{prefix}.lengths`` atomically."""

    def __init__(self, ids_stream: BinaryIO, lengths_stream: BinaryIO):
        self._ids, self._lengths = ids_stream, lengths_stream
        self.sentences = 0
        self.tokens = 0

    def add(self, ids: Sequence[int]) -> None:
        values = array.array("i", ids)
        lengths = array.array("i", [len(ids)])
        if sys.byteorder == "big":
            values.byteswap()
            lengths.byteswap()
        values.tofile(self._ids)
        lengths.tofile(self._lengths)
        self.sentences += 1
        self.tokens += len(ids)


@contextlib.contextmanager
def open_ids_writer(prefix: Path) -> Iterator[IdsWriter]:
    """``with open_ids_writer(dir / "train.src") as writer: writer.add(ids)``; atomic."""
    with atomic_write(f"{prefix}.ids", "wb") as ids, \
            atomic_write(f"{prefix}.lengths", "wb") as lengths:
        yield IdsWriter(ids, lengths)


def read_ids(prefix: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The (ids, offsets) of a side written by `open_ids_writer`; offsets has n+1 entries."""
    tensors = []
    for suffix in ("ids", "lengths"):
        path = Path(f"{prefix}.{suffix}")
        if not path.is_file():
            raise NmtError(f"{path}: not found (run `nmt preprocess` first)")
        count = path.stat().st_size // 4
        tensors.append(torch.from_file(str(path), size=count, dtype=torch.int32)
                       if count else torch.zeros(0, dtype=torch.int32))
    ids, lengths = tensors
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
    torch.cumsum(lengths.long(), 0, out=offsets[1:])
    if offsets[-1] != len(ids):
        raise NmtError(f"{prefix}.ids: holds {len(ids)} ids, lengths say {int(offsets[-1])} "
                       "(the file is damaged; run `nmt preprocess` again)")
    return ids, offsets


@dataclass
class ParallelData:
    """A split's source and target ids, as flat tensors with sentence offsets."""

    src_ids: torch.Tensor
    src_offsets: torch.Tensor
    tgt_ids: torch.Tensor
    tgt_offsets: torch.Tensor

    @classmethod
    def load(cls, directory: Path, split: str, src_vocab: Vocabulary,
             tgt_vocab: Vocabulary) -> "ParallelData":
        """Read a prepared split, mapping its SentencePiece ids to the vocabularies' ids."""
        src_ids, src_offsets = read_ids(directory / f"{split}.src")
        tgt_ids, tgt_offsets = read_ids(directory / f"{split}.tgt")
        src_ids = torch.tensor(src_vocab.from_sentencepiece, dtype=torch.int32)[src_ids.long()]
        tgt_ids = torch.tensor(tgt_vocab.from_sentencepiece, dtype=torch.int32)[tgt_ids.long()]
        if len(src_offsets) != len(tgt_offsets):
            raise NmtError(f"{directory / split}: source has {len(src_offsets) - 1} sentences, "
                           f"target {len(tgt_offsets) - 1} (run `nmt preprocess` again)")
        return cls(src_ids, src_offsets, tgt_ids, tgt_offsets)

    def __len__(self) -> int:
        return len(self.src_offsets) - 1

    def src_lengths(self) -> torch.Tensor:
        return self.src_offsets[1:] - self.src_offsets[:-1]

    def tgt_lengths(self) -> torch.Tensor:
        return self.tgt_offsets[1:] - self.tgt_offsets[:-1]

    def src(self, i: int) -> torch.Tensor:
        return self.src_ids[self.src_offsets[i]:self.src_offsets[i + 1]]

    def tgt(self, i: int) -> torch.Tensor:
        return self.tgt_ids[self.tgt_offsets[i]:self.tgt_offsets[i + 1]]


def token_batches(src_lengths: torch.Tensor, tgt_lengths: torch.Tensor, batch_tokens: int,
                  bucket_size: int, generator: torch.Generator | None) -> list[list[int]]:
    """Group sentence indices into batches of about `batch_tokens` target tokens.

    Sentences are shuffled, cut into pools of about `bucket_size` batches, sorted
    by length inside each pool (so batches hold similar lengths and little
    padding), cut into batches, and the batches shuffled. A batch never exceeds
    `batch_tokens` target tokens (EOS counted) unless it holds one sentence.
    With `generator` None the order is by length, for evaluation.
    """
    n = len(tgt_lengths)
    costs = (tgt_lengths + 1).tolist()
    src_costs = src_lengths.tolist()  # plain lists: the sort keys run once per sentence
    if generator is None:
        order = sorted(range(n), key=lambda i: (costs[i], src_costs[i]))
        return _cut(order, costs, batch_tokens)
    order = torch.randperm(n, generator=generator).tolist()
    mean_cost = max(1.0, sum(costs) / max(n, 1))
    pool_size = max(1, int(bucket_size * batch_tokens / mean_cost))
    batches = []
    for start in range(0, n, pool_size):
        pool = sorted(order[start:start + pool_size],
                      key=lambda i: (costs[i], src_costs[i]))
        batches += _cut(pool, costs, batch_tokens)
    permutation = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in permutation]


def _cut(order: list[int], costs: list[int], budget: int) -> list[list[int]]:
    batches, current, used = [], [], 0
    for i in order:
        if current and used + costs[i] > budget:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += costs[i]
    if current:
        batches.append(current)
    return batches


@dataclass
class Batch:
    """Padded tensors for one batch; `tgt_in` is BOS + y, `tgt_out` is y + EOS."""

    src: torch.Tensor  # batch x src_len
    src_lengths: torch.Tensor  # batch
    tgt_in: torch.Tensor  # batch x (tgt_len + 1)
    tgt_out: torch.Tensor  # batch x (tgt_len + 1)
    num_tokens: int  # real target tokens, EOS included

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.src.to(device, non_blocking=True),
                     self.src_lengths.to(device, non_blocking=True),
                     self.tgt_in.to(device, non_blocking=True),
                     self.tgt_out.to(device, non_blocking=True), self.num_tokens)


def pad_sources(sources: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences into batch x max_len; empty sources get one EOS."""
    sources = [s if len(s) else torch.tensor([EOS]) for s in sources]
    lengths = torch.tensor([len(s) for s in sources], dtype=torch.long)
    padded = torch.full((len(sources), int(lengths.max())), PAD, dtype=torch.long)
    for row, s in enumerate(sources):
        padded[row, :len(s)] = s
    return padded, lengths


def make_batch(data: ParallelData, indices: Sequence[int]) -> Batch:
    src, src_lengths = pad_sources([data.src(i) for i in indices])
    targets = [data.tgt(i) for i in indices]
    width = max(len(t) for t in targets) + 1
    tgt_in = torch.full((len(indices), width), PAD, dtype=torch.long)
    tgt_out = torch.full((len(indices), width), PAD, dtype=torch.long)
    for row, t in enumerate(targets):
        tgt_in[row, 0] = BOS
        tgt_in[row, 1:len(t) + 1] = t
        tgt_out[row, :len(t)] = t
        tgt_out[row, len(t)] = EOS
    return Batch(src, src_lengths, tgt_in, tgt_out, sum(len(t) + 1 for t in targets))
