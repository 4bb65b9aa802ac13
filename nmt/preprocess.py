"""`nmt preprocess`: raw parallel text -> SentencePiece model(s) and binary token ids.

Two streaming passes over the training corpus (memory stays bounded however
large it is): the first normalises, drops empty pairs and writes clean text for
SentencePiece to sample from; the second encodes in chunks, drops over-long
pairs and extreme length ratios, and writes ids. Every drop is counted by reason.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

from nmt.config import Config, DataConfig
from nmt.data import open_ids_writer
from nmt.errors import NmtError
from nmt.textio import atomic_write, read_lines, resolve_split
from nmt.vocabulary import Vocabulary, normalize, train_sentencepiece

log = logging.getLogger(__name__)

CHUNK_LINES = 10_000


def vocabulary_paths(directory: Path, joint: bool) -> tuple[Path, Path]:
    """The SentencePiece model files (source, target) in a prepared directory."""
    if joint:
        return directory / "spm.joint.model", directory / "spm.joint.model"
    return directory / "spm.src.model", directory / "spm.tgt.model"


def load_vocabularies(directory: Path, joint: bool) -> tuple[Vocabulary, Vocabulary]:
    """The (source, target) vocabularies `preprocess` wrote: pieces seen in training only."""
    vocabularies = []
    for side, model_path in zip(("src", "tgt"), vocabulary_paths(directory, joint)):
        kept_path = directory / f"vocab.{side}.json"
        if not model_path.is_file() or not kept_path.is_file():
            raise NmtError(f"{directory}: no prepared vocabulary ({model_path.name}, "
                           f"{kept_path.name}); run `nmt preprocess CONFIG` first")
        kept = json.loads(kept_path.read_text(encoding="utf-8"))
        vocabularies.append(Vocabulary.from_file(model_path, kept))
    return vocabularies[0], vocabularies[1]


def read_parallel(prefix: str, data: DataConfig, replace_invalid: bool = False
                  ) -> Iterator[tuple[str, str]]:
    """Yield raw (source, target) line pairs; unequal line counts are an error."""
    src_path, tgt_path = resolve_split(prefix, data.src_lang), resolve_split(prefix, data.tgt_lang)
    src_lines = read_lines(src_path, replace_invalid)
    tgt_lines = read_lines(tgt_path, replace_invalid)
    count = 0
    for src, tgt in itertools.zip_longest(src_lines, tgt_lines):
        if src is None or tgt is None:
            longer, rest = (tgt_path, tgt_lines) if src is None else (src_path, src_lines)
            longer_count = count + 1 + sum(1 for _ in rest)
            src_count, tgt_count = ((count, longer_count) if src is None
                                    else (longer_count, count))
            raise NmtError(f"{src_path} has {src_count} lines but {tgt_path} has {tgt_count}; "
                           "parallel files must have one sentence per line, aligned")
        count += 1
        yield src, tgt


def preprocess(config: Config, replace_invalid: bool = False) -> dict:
    """Run the whole preprocessing; returns (and writes to stats.json) the statistics."""
    data = config.data
    out = Path(data.prepared_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stats: dict = {"drops": {}}

    # Pass 1: normalise, drop empty pairs, write clean text for SentencePiece.
    drops: Counter = Counter()
    clean = {side: out / f"train.clean.{side}" for side in ("src", "tgt")}
    with atomic_write(clean["src"]) as src_out, atomic_write(clean["tgt"]) as tgt_out:
        total = 0
        for src, tgt in read_parallel(data.train, data, replace_invalid):
            total += 1
            src, tgt = normalize(src, data.lowercase), normalize(tgt, data.lowercase)
            if not src or not tgt:
                drops["empty"] += 1
                continue
            src_out.write(src + "\n")
            tgt_out.write(tgt + "\n")
    kept = total - drops["empty"]
    if kept == 0:
        raise NmtError(f"{data.train}: no usable sentence pairs (all {total} are empty)")
    log.info("train: %d pairs read, %d empty dropped", total, drops["empty"])

    # SentencePiece, joint or one per side.
    src_model, tgt_model = vocabulary_paths(out, config.sentencepiece.joint)
    if config.sentencepiece.joint:
        src_vocab = tgt_vocab = train_sentencepiece(
            [clean["src"], clean["tgt"]], src_model.with_suffix(""), config.sentencepiece)
    else:
        src_vocab = train_sentencepiece([clean["src"]], src_model.with_suffix(""),
                                        config.sentencepiece)
        tgt_vocab = train_sentencepiece([clean["tgt"]], tgt_model.with_suffix(""),
                                        config.sentencepiece)
    log.info("sentencepiece: %d pieces (%s)", len(tgt_vocab),
             "joint" if config.sentencepiece.joint else "separate")

    # Pass 2: encode and filter the training pairs.
    clean_pairs = zip(read_lines(clean["src"]), read_lines(clean["tgt"]))
    seen: tuple[set[int], set[int]] = (set(range(4)), set(range(4)))  # specials always kept
    stats["train"] = _encode_split(clean_pairs, out / "train", src_vocab, tgt_vocab, data,
                                   drops, seen=seen)
    for side, ids in zip(("src", "tgt"), seen):
        with atomic_write(out / f"vocab.{side}.json") as stream:
            json.dump(sorted(ids), stream)
        stats[f"{side}_vocab_size"] = len(ids)
    stats["train"]["read"] = total
    stats["drops"] = dict(drops)
    for side in clean.values():
        side.unlink()

    # Dev and test keep every pair (scores must cover the whole set) and their raw references.
    for split, prefix in (("dev", data.dev), ("test", data.test)):
        if not prefix:
            continue
        with atomic_write(out / f"{split}.ref") as refs:
            pairs = _normalized_keeping_references(prefix, data, replace_invalid, refs)
            stats[split] = _encode_split(pairs, out / split, src_vocab, tgt_vocab,
                                         data, Counter(), seen=None)

    seconds = time.perf_counter() - started
    stats["seconds"] = round(seconds, 2)
    stats["train_pairs_per_second"] = round(total / seconds, 1)
    with atomic_write(out / "stats.json") as stream:
        json.dump(stats, stream, indent=1)
    return stats


def _normalized_keeping_references(prefix: str, data: DataConfig, replace_invalid: bool,
                                   refs) -> Iterator[tuple[str, str]]:
    """Normalised pairs of a scoring split; the raw targets go to `refs` for BLEU."""
    for src, tgt in read_parallel(prefix, data, replace_invalid):
        refs.write(tgt + "\n")
        yield normalize(src, data.lowercase), normalize(tgt, data.lowercase)


def _encode_split(pairs, prefix: Path, src_vocab: Vocabulary, tgt_vocab: Vocabulary,
                  data: DataConfig, drops: Counter,
                  seen: tuple[set[int], set[int]] | None) -> dict:
    """Encode (normalised) pairs in chunks and write their SentencePiece ids.

    For the training split (`seen` given) pairs are filtered by length and the
    ids written are added to `seen`; other splits keep every pair.
    """
    with open_ids_writer(Path(f"{prefix}.src")) as src_writer, \
            open_ids_writer(Path(f"{prefix}.tgt")) as tgt_writer:
        while chunk := list(itertools.islice(pairs, CHUNK_LINES)):
            sources = src_vocab.encode([src for src, _ in chunk])
            targets = tgt_vocab.encode([tgt for _, tgt in chunk])
            for src_ids, tgt_ids in zip(sources, targets):
                if seen is not None:
                    reason = _drop_reason(len(src_ids), len(tgt_ids), data)
                    if reason:
                        drops[reason] += 1
                        continue
                    seen[0].update(src_ids)
                    seen[1].update(tgt_ids)
                src_writer.add(src_ids)
                tgt_writer.add(tgt_ids)
    return {"pairs": src_writer.sentences, "src_tokens": src_writer.tokens,
            "tgt_tokens": tgt_writer.tokens}


def _drop_reason(src_len: int, tgt_len: int, data: DataConfig) -> str | None:
    if max(src_len, tgt_len) > data.max_length:
        return "too_long"
    if max(src_len, tgt_len) > data.max_length_ratio * max(1, min(src_len, tgt_len)):
        return "length_ratio"
    return None
