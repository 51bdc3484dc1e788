"""Micro-batching: concurrent jobs share model calls, each caller gets its own result back."""

from __future__ import annotations

import threading

import pytest

from infer_cli.batcher import Batcher
from infer_cli.errors import DataError, RequestTimeout


class Recorder:
    """A scoring function that doubles numbers, remembers its batches, and can be held."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.threads: list[str] = []
        self.hold = hold
        self.started = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.threads.append(threading.current_thread().name)
        self.started.set()
        if self.hold is not None:
            self.hold.wait(10)
        if any(item < 0 for item in items):
            raise DataError(f"negative value in {items}")
        return [item * 2 for item in items]


def _run_in_threads(batcher: Batcher[int, int], items: list[int]) -> dict[int, object]:
    results: dict[int, object] = {}
    start = threading.Barrier(len(items))

    def call(item: int) -> None:
        start.wait()
        try:
            results[item] = batcher.submit(item, 1, 10)
        except Exception as exc:
            results[item] = exc

    threads = [threading.Thread(target=call, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    return results


def test_a_lone_job_runs_at_once_on_the_callers_thread() -> None:
    score = Recorder()
    # A long delay would show as a hang: a lone job must not wait for company.
    batcher = Batcher(score, max_rows=64, max_delay=60)
    done: list[int] = []
    caller = threading.Thread(target=lambda: done.append(batcher.submit(21, 1)), name="caller")
    caller.start()
    caller.join(10)
    assert done == [42]
    assert score.batches == [[21]] and score.threads == ["caller"]


def test_concurrent_jobs_are_batched_and_each_gets_its_own_result() -> None:
    hold = threading.Event()
    score = Recorder(hold)
    batcher = Batcher(score, max_rows=64)
    first = threading.Thread(target=batcher.submit, args=(1000, 1, 10))
    first.start()
    assert score.started.wait(10)
    # While the first call is held, sixteen more jobs queue up behind it.
    waiting = threading.Thread(target=lambda: results.update(_run_in_threads(batcher, items)))
    items = list(range(16))
    results: dict[int, object] = {}
    waiting.start()
    while sum(1 for _ in list(batcher._queue)) < len(items):
        threading.Event().wait(0.01)
    hold.set()
    waiting.join(20)
    first.join(10)
    assert results == {item: item * 2 for item in items}
    assert sorted(score.batches[1]) == items
    assert len(score.batches) == 2


def test_batches_respect_the_row_limit() -> None:
    hold = threading.Event()
    score = Recorder(hold)
    batcher = Batcher(score, max_rows=4)
    first = threading.Thread(target=batcher.submit, args=(1000, 1, 10))
    first.start()
    assert score.started.wait(10)
    results: dict[int, object] = {}
    waiting = threading.Thread(target=lambda: results.update(_run_in_threads(batcher, items)))
    items = list(range(10))
    waiting.start()
    while len(batcher._queue) < len(items):
        threading.Event().wait(0.01)
    hold.set()
    waiting.join(20)
    first.join(10)
    assert results == {item: item * 2 for item in items}
    assert max(len(batch) for batch in score.batches) == 4
    assert sorted(item for batch in score.batches[1:] for item in batch) == items


def test_a_failing_job_fails_alone() -> None:
    hold = threading.Event()
    score = Recorder(hold)
    batcher = Batcher(score, max_rows=64)
    first = threading.Thread(target=batcher.submit, args=(1000, 1, 10))
    first.start()
    assert score.started.wait(10)
    results: dict[int, object] = {}
    items = [1, 2, -3, 4]
    waiting = threading.Thread(target=lambda: results.update(_run_in_threads(batcher, items)))
    waiting.start()
    while len(batcher._queue) < len(items):
        threading.Event().wait(0.01)
    hold.set()
    waiting.join(20)
    first.join(10)
    assert isinstance(results[-3], DataError)
    assert {item: results[item] for item in (1, 2, 4)} == {1: 2, 2: 4, 4: 8}


def test_a_job_that_waits_too_long_times_out_and_the_batcher_recovers() -> None:
    hold = threading.Event()
    score = Recorder(hold)
    batcher = Batcher(score, max_rows=64)
    first = threading.Thread(target=batcher.submit, args=(1, 1, 10))
    first.start()
    assert score.started.wait(10)
    with pytest.raises(RequestTimeout, match="busy"):
        batcher.submit(2, 1, timeout=0.05)
    hold.set()
    first.join(10)
    assert batcher.submit(5, 1, timeout=10) == 10
    assert [2] not in score.batches


def test_an_announced_request_is_waited_for_within_the_delay() -> None:
    score = Recorder()
    batcher = Batcher(score, max_rows=64, max_delay=60)
    with batcher.arriving() as submit_later:
        leader = threading.Thread(target=batcher.submit, args=(1, 1, 10))
        leader.start()
        # The leader waits for the announced request instead of scoring alone.
        while not batcher._busy:
            threading.Event().wait(0.01)
        assert submit_later(2, 1, 10) == 4
    leader.join(10)
    assert score.batches == [[1, 2]]


def test_a_withdrawn_announcement_releases_the_waiting_leader() -> None:
    score = Recorder()
    batcher = Batcher(score, max_rows=64, max_delay=60)
    with batcher.arriving():
        leader = threading.Thread(target=batcher.submit, args=(1, 1, 10))
        leader.start()
        while not batcher._busy:
            threading.Event().wait(0.01)
    leader.join(10)
    assert not leader.is_alive()
    assert score.batches == [[1]]
