"""Dynamic batching across requests: one bounded queue, one worker thread.

Each request puts its lines into one queue under a key (for the server: the
model and the search options; lines of different keys never share a batch).
The worker takes the oldest waiting line and gathers the lines of the same key,
up to `batch_size`, while more keep coming: it starts the batch when it is full,
when no line of that key arrived for `max_wait` seconds (counted from when the
worker was free, so that lines which queued up during the previous batch still
get company), or at the latest once it has waited as long as the previous batch
took to translate. Under load from many clients each waiting for its answer
before asking again, that makes full batches: the clients answered last come
back before the next batch starts, instead of batches alternating between two
halves. Lines of other keys keep their place. A request is answered through
one `concurrent.futures.Future` when its last line is done.

A batch that fails is translated again line by line, so that a bad line fails
its own request only. A request that does not fit in the queue is refused whole
(`QueueFull`): nothing is ever half accepted. `close()` translates everything
already accepted before the worker stops.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional, Sequence

# translate(key, lines, first_line_number) -> one result per line
TranslateFn = Callable[[Hashable, list[str], int], list[Any]]


class QueueFull(Exception):
    """The queue has no room for the request's lines; try again later."""


class Closed(Exception):
    """The batcher is shutting down and accepts nothing new."""


@dataclass
class _Request:
    key: Hashable
    lines: Sequence[str]
    future: Future = field(default_factory=Future)
    results: list[Any] = field(default_factory=list)
    remaining: int = 0

    def live(self) -> bool:
        """Still wanted: not failed, not cancelled (and from now on not cancellable)."""
        if self.future.done():
            return False
        return self.future.running() or self.future.set_running_or_notify_cancel()


@dataclass
class _Line:
    request: _Request
    index: int  # in its request
    arrived: float  # time.monotonic()


class Batcher:
    def __init__(self, translate: TranslateFn, batch_size: int = 64, max_wait: float = 0.005,
                 queue_size: int = 1024):
        self.translate = translate
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.queue_size = queue_size
        self._waiting: deque[_Line] = deque()
        self._condition = threading.Condition()
        self._closing = False
        self._thread: Optional[threading.Thread] = None
        self._last_batch_seconds = 0.0

    @property
    def waiting(self) -> int:
        """Lines in the queue (not counting the batch being translated)."""
        return len(self._waiting)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._closing

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="nmt-batcher", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Accept nothing more, translate what is waiting, then stop the worker."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join()

    def submit(self, key: Hashable, lines: Sequence[str]) -> Future:
        """Queue `lines`; the future gives their results in order (or the first error)."""
        request = _Request(key, lines, results=[None] * len(lines), remaining=len(lines))
        if not lines:
            request.future.set_result([])
            return request.future
        with self._condition:
            if self._closing or self._thread is None:
                raise Closed("the server is not accepting requests (shutting down)")
            free = self.queue_size - len(self._waiting)
            if len(lines) > free:
                raise QueueFull(f"the queue is full ({len(self._waiting)} of {self.queue_size} "
                                f"lines waiting, {len(lines)} more asked)")
            now = time.monotonic()
            self._waiting.extend(_Line(request, i, now) for i in range(len(lines)))
            self._condition.notify()
        return request.future

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            if batch:
                start = time.monotonic()
                self._run(batch)
                self._last_batch_seconds = time.monotonic() - start

    def _next_batch(self) -> Optional[list[_Line]]:
        """The next batch (possibly empty, if all its requests were cancelled); None at the end."""
        with self._condition:
            while not self._waiting:
                if self._closing:
                    return None
                self._condition.wait()
            key = self._waiting[0].request.key
            free = time.monotonic()
            latest = free + max(self.max_wait, self._last_batch_seconds)
            while not self._closing:
                same = [line for line in self._waiting if line.request.key == key]
                quiet = max(same[-1].arrived, free) + self.max_wait
                left = min(quiet, latest) - time.monotonic()
                if len(same) >= self.batch_size or left <= 0:
                    break
                self._condition.wait(left)
            batch, others = [], deque()
            for line in self._waiting:
                if line.request.key == key and len(batch) < self.batch_size:
                    batch.append(line)
                else:
                    others.append(line)
            self._waiting = others
        return [line for line in batch if line.request.live()]

    def _run(self, batch: list[_Line]) -> None:
        # A line alone is numbered as in its request, so that an error names it rightly.
        first_line_number = batch[0].index + 1 if len(batch) == 1 else 1
        try:
            results = self.translate(batch[0].request.key,
                                     [line.request.lines[line.index] for line in batch],
                                     first_line_number)
        except Exception as error:
            if len(batch) == 1:
                batch[0].request.future.set_exception(error)
            else:  # find the line at fault: only its request fails
                for line in batch:
                    if not line.request.future.done():
                        self._run([line])
            return
        for line, result in zip(batch, results):
            self._deliver(line, result)

    @staticmethod
    def _deliver(line: _Line, result: Any) -> None:
        request = line.request
        request.results[line.index] = result
        request.remaining -= 1
        if request.remaining == 0:
            request.future.set_result(request.results)
