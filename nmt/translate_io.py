"""`nmt translate` on files and streams: read lines, translate, write text, n-best or JSONL.

Files are read in chunks of `CHUNK_LINES`, so memory stays bounded on long
inputs; within a chunk sentences are translated in length-sorted batches and
written back in input order. A file output is written to a temporary name and
renamed at the end. Input from a terminal or a pipe is translated as it comes:
each line's result is written and flushed as soon as it is ready (lines that
have already arrived are batched together; nothing waits for more input).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import stat
import sys
import threading
from pathlib import Path
from typing import IO, Iterator, Optional

from tqdm import tqdm

from nmt.errors import NmtError
from nmt.textio import atomic_write, read_lines
from nmt.translation import Translation, Translator

CHUNK_LINES = 5_000
OUTPUT_FORMATS = ("text", "jsonl")


def format_translation(translation: Translation, index: int, output_format: str,
                       n_best: int, forced: bool = False) -> str:
    """The output lines for one input line (0-based `index`), newline included.

    text: the best hypothesis; with `n_best` > 1, Moses n-best lines
    ``index ||| text ||| logprob=L ||| score``; forced decoding: the total
    log-probability and the perplexity, tab-separated. jsonl: one JSON object.
    """
    if output_format == "jsonl":
        return json.dumps(translation.to_dict(), ensure_ascii=False) + "\n"
    if forced:
        best = translation.hypotheses[0]
        return f"{sum(best.piece_logprobs):.6f}\t{best.perplexity:.4f}\n"
    if n_best == 1:
        return translation.hypotheses[0].text + "\n"
    return "".join(f"{index} ||| {h.text} ||| logprob={h.logprob:.6f} ||| {h.score:.6f}\n"
                   for h in translation.hypotheses)


def translate_file(translator: Translator, input_path: Optional[str], output_path: Optional[str],
                   output_format: str = "text", attention: bool = False,
                   force_target: Optional[str] = None, replace_invalid: bool = False) -> int:
    """Translate `input_path` (None or "-" = stdin) to `output_path` (None = stdout).

    With `force_target`, score that file's lines as translations of the input's
    (forced decoding) instead of searching. Returns the number of input lines.
    """
    if attention and output_format != "jsonl":
        raise NmtError("--attention needs --output-format jsonl")
    lines = read_lines(input_path or "-", replace_invalid)
    streaming = _is_interactive(input_path)
    batches = _available_lines(lines) if streaming else _chunks(lines, CHUNK_LINES)
    targets = read_lines(force_target, replace_invalid) if force_target else None
    n_best = translator.decoding.n_best
    total = None if streaming else _count_lines(input_path)
    with _open_output(output_path) as out, tqdm(total=total, unit="sent", desc="translate",
                                                 disable=None if not streaming else True,
                                                 dynamic_ncols=True) as bar:
        count = 0
        for batch in batches:
            if targets is not None:
                target_batch = list(itertools.islice(targets, len(batch)))
                if len(target_batch) < len(batch):
                    raise NmtError(f"{force_target} has fewer lines than "
                                   f"{input_path or 'the input'} ({count + len(target_batch)})")
                results = translator.score(batch, target_batch, attention,
                                           first_line_number=count + 1)
                bar.update(len(batch))
            else:
                results = translator.translate(batch, attention=attention,
                                               cut_long_lines=output_format == "text",
                                               first_line_number=count + 1,
                                               progress=bar.update)
            for offset, result in enumerate(results):
                out.write(format_translation(result, count + offset, output_format, n_best,
                                             forced=targets is not None))
            count += len(batch)
            out.flush()
        if targets is not None and next(targets, None) is not None:
            raise NmtError(f"{force_target} has more lines than {input_path or 'the input'} "
                           f"({count})")
    return count


def _is_interactive(input_path: Optional[str]) -> bool:
    """Standard input that is not a regular file (a terminal or a pipe)."""
    if input_path and input_path != "-":
        return False
    try:
        return not stat.S_ISREG(os.fstat(sys.stdin.fileno()).st_mode)
    except (OSError, ValueError):  # no real file descriptor (e.g. a test's StringIO)
        return False


def _available_lines(lines: Iterator[str], limit: int = 256) -> Iterator[list[str]]:
    """Batches of the lines that have arrived: wait for one, take what else is there.

    A thread reads ahead, so a slow writer on the other side of the pipe never
    delays lines that are already here. Errors while reading are raised here.
    """
    arrived: queue.Queue = queue.Queue(maxsize=4 * limit)
    done = object()

    def read() -> None:
        try:
            for line in lines:
                arrived.put(line)
            arrived.put(done)
        except BaseException as error:  # handed to the consumer, which raises it
            arrived.put(error)

    threading.Thread(target=read, daemon=True).start()
    finished = False
    while not finished:
        batch = []
        item = arrived.get()
        while True:
            if item is done:
                finished = True
                break
            if isinstance(item, BaseException):
                raise item
            batch.append(item)
            if len(batch) >= limit:
                break
            try:
                item = arrived.get_nowait()
            except queue.Empty:
                break
        if batch:
            yield batch


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
