"""`nmt translate`: raw text in, detokenised translations out, one line per line.

Input is read in chunks, so memory stays bounded on long files; within a chunk
sentences are translated in length-sorted batches and written back in input
order. A file output is written to a temporary name and renamed at the end.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, Optional

import torch
from torch import nn
from tqdm import tqdm

from nmt.checkpoint import Checkpoint
from nmt.errors import NmtError
from nmt.search import translate_ids
from nmt.textio import atomic_write, read_lines
from nmt.vocabulary import normalize

log = logging.getLogger(__name__)

CHUNK_LINES = 5_000
MAX_INPUT_PIECES = 1_000  # longer inputs are cut (with a warning): attention is O(length)


@dataclass
class TranslateOptions:
    beam_size: int
    length_penalty: float
    max_length_ratio: float
    batch_size: int
    device: torch.device
    precision: str = "fp32"  # fp32; bf16 (autocast); int8 (dynamic quantisation, CPU only)


def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantisation of the LSTM/GRU and linear layers, for CPU translation.

    Weights are stored as int8; activations are quantised on the fly per batch.
    Embeddings and plain-RNN layers stay in float32.
    """
    layers = {nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell, nn.RNNCell, nn.Linear}
    with warnings.catch_warnings():
        # PyTorch deprecates torch.ao.quantization in favour of the separate torchao
        # package; it still works, and the warnings would only alarm users.
        warnings.filterwarnings("ignore", message=r"torch\.(ao\.quantization|quantize_per)")
        return torch.ao.quantization.quantize_dynamic(model, layers, dtype=torch.qint8)


class Translator:
    """A loaded model with its vocabularies, translating lists of raw sentences."""

    def __init__(self, checkpoint: Checkpoint, options: TranslateOptions):
        self.checkpoint = checkpoint
        self.options = options
        self.model = checkpoint.build_model(options.device)
        if options.precision == "int8":
            if options.device.type != "cpu":
                raise NmtError("--precision int8 runs on the CPU only (use --device cpu)")
            self.model = quantize_int8(self.model)
        self.lowercase = checkpoint.config.data.lowercase

    def translate(self, lines: list[str], first_line_number: int = 1,
                  progress=None) -> list[str]:
        sources = self.checkpoint.src_vocab.encode(
            [normalize(line, self.lowercase) for line in lines])
        for offset, ids in enumerate(sources):
            if len(ids) > MAX_INPUT_PIECES:
                log.warning("input line %d has %d pieces; translating only the first %d",
                            first_line_number + offset, len(ids), MAX_INPUT_PIECES)
                del ids[MAX_INPUT_PIECES:]
        opts = self.options
        with torch.autocast(opts.device.type, dtype=torch.bfloat16,
                            enabled=opts.precision == "bf16"):
            outputs = translate_ids(self.model, sources, opts.beam_size, opts.length_penalty,
                                    opts.max_length_ratio, opts.batch_size, opts.device, progress)
        results = [self.checkpoint.tgt_vocab.decode(ids) for ids in outputs]
        for offset, (source, result) in enumerate(zip(sources, results)):
            if source and not result:
                log.warning("input line %d: the model produced an empty translation",
                            first_line_number + offset)
        return results


def translate_file(translator: Translator, input_path: Optional[str], output_path: Optional[str],
                   replace_invalid: bool = False) -> int:
    """Translate `input_path` (None or "-" = stdin) to `output_path` (None = stdout)."""
    lines = read_lines(input_path or "-", replace_invalid)
    total = _count_lines(input_path)
    with _open_output(output_path) as out, tqdm(total=total, unit="sent", desc="translate",
                                                 disable=None, dynamic_ncols=True) as bar:
        count = 0
        for chunk in _chunks(lines, CHUNK_LINES):
            for result in translator.translate(chunk, count + 1, bar.update):
                out.write(result + "\n")
            count += len(chunk)
            out.flush()
    return count


def _chunks(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    while chunk := list(itertools.islice(lines, size)):
        yield chunk


def _count_lines(path: Optional[str]) -> Optional[int]:
    """Line count of a plain file for the progress bar (None for stdin or .gz)."""
    if not path or path == "-" or path.endswith(".gz"):
        return None
    with contextlib.suppress(OSError), open(path, "rb") as stream:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b""))
    return None


@contextlib.contextmanager
def _open_output(path: Optional[str]) -> Iterator[IO[str]]:
    if not path or path == "-":
        yield sys.stdout
    else:
        with atomic_write(Path(path)) as stream:
            yield stream
