"""The dynamic batcher alone, with a recording stand-in for translation."""

from __future__ import annotations

import threading
import time

import pytest

from nmt.batching import Batcher, Closed, QueueFull


class Recorder:
    """Upper-cases lines; records each call; fails on lines saying "bad"; can be held."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, key, lines, first_line_number):
        self.calls.append((key, list(lines), first_line_number))
        self.entered.set()
        self.release.wait(30)
        if "bad" in lines:
            raise ValueError(f"line {first_line_number + lines.index('bad')} is bad")
        return [f"{key}:{line.upper()}" for line in lines]


@pytest.fixture
def recorder():
    return Recorder()


def started(batcher: Batcher) -> Batcher:
    batcher.start()
    return batcher


def test_lines_of_one_key_share_a_batch_and_each_request_gets_its_own_in_order(recorder):
    batcher = Batcher(recorder, batch_size=4, max_wait=30, queue_size=100)
    recorder.release.clear()
    batcher.start()
    first = batcher.submit("k", ["a", "b", "c", "d"])  # a full batch goes at once...
    assert recorder.entered.wait(30)
    # ...and while it is translated, requests of two keys queue up, interleaved.
    futures = [batcher.submit("k", ["e", "f"]), batcher.submit("j", ["x"]),
               batcher.submit("k", ["g", "h", "i"]), batcher.submit("j", ["y", "z"])]
    recorder.release.set()
    batcher.close()
    assert first.result() == ["k:A", "k:B", "k:C", "k:D"]
    assert [f.result() for f in futures] == [["k:E", "k:F"], ["j:X"], ["k:G", "k:H", "k:I"],
                                             ["j:Y", "j:Z"]]
    # Batches never mix keys, hold at most batch_size lines, and keep arrival order.
    assert [(key, lines) for key, lines, _ in recorder.calls] == [
        ("k", ["a", "b", "c", "d"]), ("k", ["e", "f", "g", "h"]), ("j", ["x", "y", "z"]),
        ("k", ["i"])]


def test_a_single_request_waits_at_most_max_wait(recorder):
    batcher = started(Batcher(recorder, batch_size=64, max_wait=0.001))
    assert batcher.submit("k", ["a", "b"]).result(timeout=30) == ["k:A", "k:B"]
    batcher.close()


def test_lines_that_queued_during_a_batch_still_wait_for_company(recorder):
    """As under many clients that each ask again once answered: the batch after a
    full one is full too, rather than the one line that came while it ran."""
    batcher = Batcher(recorder, batch_size=4, max_wait=0.5)
    recorder.release.clear()
    batcher.start()
    first = batcher.submit("k", ["a", "b", "c", "d"])
    assert recorder.entered.wait(30)
    early = batcher.submit("k", ["e"])
    time.sleep(0.6)  # longer than max_wait: "e" has waited for company all that time
    recorder.release.set()
    first.result(timeout=30)
    time.sleep(0.05)  # the worker is free now, and the clients answered come back:
    later = [batcher.submit("k", [line]) for line in "fgh"]
    batcher.close()
    assert early.result() == ["k:E"] and [f.result() for f in later] == [["k:F"], ["k:G"], ["k:H"]]
    assert [lines for _, lines, _ in recorder.calls] == [["a", "b", "c", "d"], ["e", "f", "g", "h"]]


def test_a_bad_line_fails_only_its_own_request_and_is_named(recorder):
    batcher = Batcher(recorder, batch_size=3, max_wait=30)
    recorder.release.clear()
    batcher.start()
    blocker = batcher.submit("k", ["p", "q", "r"])
    assert recorder.entered.wait(30)
    good = batcher.submit("k", ["one", "two"])
    bad = batcher.submit("k", ["fine", "bad", "never"])
    other = batcher.submit("k", ["three"])
    recorder.release.set()
    batcher.close()
    assert blocker.result() == ["k:P", "k:Q", "k:R"]
    assert good.result() == ["k:ONE", "k:TWO"] and other.result() == ["k:THREE"]
    with pytest.raises(ValueError, match="line 2 is bad"):  # numbered within its request
        bad.result()
    # The failed batch [bad, never, three] was retried line by line; once its request
    # had failed, "never" was not translated again.
    assert recorder.calls[-3:] == [("k", ["bad", "never", "three"], 1), ("k", ["bad"], 2),
                                   ("k", ["three"], 1)]


def test_a_full_queue_refuses_a_request_whole(recorder):
    batcher = Batcher(recorder, batch_size=1, max_wait=0, queue_size=3)
    recorder.release.clear()
    batcher.start()
    held = batcher.submit("k", ["held"])
    assert recorder.entered.wait(30)
    queued = batcher.submit("k", ["a", "b"])
    with pytest.raises(QueueFull, match="2 of 3 lines waiting, 2 more asked"):
        batcher.submit("k", ["c", "d"])
    assert batcher.waiting == 2  # nothing of the refused request was taken
    last = batcher.submit("k", ["c"])
    recorder.release.set()
    batcher.close()
    assert [f.result() for f in (held, queued, last)] == [["k:HELD"], ["k:A", "k:B"], ["k:C"]]


def test_close_answers_everything_accepted_then_refuses(recorder):
    batcher = Batcher(recorder, batch_size=2, max_wait=60)  # would wait a minute for company
    batcher.start()
    futures = [batcher.submit("k", [f"line {i}"]) for i in range(5)]
    batcher.close()  # no waiting for max_wait while closing
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [[f"k:LINE {i}"] for i in range(5)]
    with pytest.raises(Closed):
        batcher.submit("k", ["late"])


def test_a_cancelled_request_is_not_translated(recorder):
    batcher = Batcher(recorder, batch_size=1, max_wait=0)
    recorder.release.clear()
    batcher.start()
    batcher.submit("k", ["first"])
    assert recorder.entered.wait(30)
    cancelled = batcher.submit("k", ["gone"])
    kept = batcher.submit("k", ["kept"])
    assert cancelled.cancel()
    recorder.release.set()
    batcher.close()
    assert kept.result() == ["k:KEPT"]
    assert all("gone" not in lines for _, lines, _ in recorder.calls)
