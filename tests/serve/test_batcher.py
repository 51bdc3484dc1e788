"""Micro-batching: jobs queued together share a model call, each gets its own result back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from infer_cli.serve.batcher import Batcher


class Recorder:
    """A scoring function that doubles numbers, remembers its batches, and can be held."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.hold = hold
        self.started = threading.Event()

    def __call__(self, jobs: list[int]) -> list[int]:
        self.batches.append(list(jobs))
        self.started.set()
        if self.hold is not None:
            self.hold.wait(10)
        if any(job < 0 for job in jobs):
            raise ValueError(f"negative value in {jobs}")
        return [job * 2 for job in jobs]


class Delivered:
    """Collects what the batcher delivers, and waits for it."""

    def __init__(self) -> None:
        self.results: dict[int, object] = {}
        self.batches: list[list[int]] = []
        self._changed = threading.Condition()

    def __call__(self, pairs: list[tuple[int, object]]) -> None:
        with self._changed:
            self.batches.append([job for job, _ in pairs])
            self.results.update(pairs)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10) -> dict[int, object]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.results) >= count, timeout)
            return dict(self.results)


def _failed(job: int, error: BaseException) -> object:
    return f"failed: {error}"


def _batcher(
    score: Recorder, delivered: Delivered, arriving: Callable[[], int] = lambda: 0, **limits: float
) -> Batcher[int, object]:
    batcher: Batcher[int, object] = Batcher(
        score,  # type: ignore[arg-type]
        delivered,
        _failed,
        arriving=arriving,
        **limits,  # type: ignore[arg-type]
    )
    batcher.start()
    return batcher


def test_a_lone_job_is_scored_at_once() -> None:
    score, delivered = Recorder(), Delivered()
    # A long delay would show as a hang: a job with nothing arriving never waits for company.
    batcher = _batcher(score, delivered, max_delay=60)
    batcher.submit([21])
    assert delivered.wait_for(1, timeout=5) == {21: 42}
    batcher.stop(5)


def test_jobs_queued_during_a_batch_are_scored_together_and_each_gets_its_own_result() -> None:
    hold = threading.Event()
    score, delivered = Recorder(hold), Delivered()
    batcher = _batcher(score, delivered)
    batcher.submit([1000])
    assert score.started.wait(10)
    for job in range(16):
        batcher.submit([job])
    hold.set()
    results = delivered.wait_for(17)
    assert results == {job: job * 2 for job in [1000, *range(16)]}
    assert score.batches == [[1000], list(range(16))]
    assert delivered.batches == score.batches
    batcher.stop(5)


def test_batches_hold_at_most_max_jobs() -> None:
    hold = threading.Event()
    score, delivered = Recorder(hold), Delivered()
    batcher = _batcher(score, delivered, max_jobs=4)
    batcher.submit([1000])
    assert score.started.wait(10)
    batcher.submit(list(range(10)))
    hold.set()
    delivered.wait_for(11)
    assert score.batches[1:] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    batcher.stop(5)


def test_a_failing_batch_fails_each_of_its_jobs_and_the_batcher_goes_on() -> None:
    hold = threading.Event()
    score, delivered = Recorder(hold), Delivered()
    batcher = _batcher(score, delivered)
    batcher.submit([1000])
    assert score.started.wait(10)
    batcher.submit([1, -2])
    hold.set()
    results = delivered.wait_for(3)
    assert results[1] == results[-2] == "failed: negative value in [1, -2]"
    batcher.submit([5])
    assert delivered.wait_for(4)[5] == 10
    batcher.stop(5)


def test_a_withdrawn_job_is_never_scored_but_a_started_one_cannot_be_withdrawn() -> None:
    hold = threading.Event()
    score, delivered = Recorder(hold), Delivered()
    batcher = _batcher(score, delivered)
    batcher.submit([1])
    assert score.started.wait(10)
    batcher.submit([2, 3])
    assert not batcher.withdraw(1)
    assert batcher.withdraw(2)
    hold.set()
    assert delivered.wait_for(2) == {1: 2, 3: 6}
    batcher.stop(5)
    assert [2] not in score.batches and all(2 not in batch for batch in score.batches)


def test_a_batch_waits_within_the_delay_for_requests_still_arriving() -> None:
    score, delivered = Recorder(), Delivered()
    arriving = [1]
    batcher = _batcher(score, delivered, arriving=lambda: arriving[0], max_delay=60)
    batcher.submit([1])
    time.sleep(0.2)
    assert not delivered.results, "the batch did not wait for the request being read"
    arriving[0] = 0
    batcher.submit([2])
    assert delivered.wait_for(2) == {1: 2, 2: 4}
    assert score.batches == [[1, 2]]
    batcher.stop(5)


def test_the_delay_bounds_the_wait_for_a_request_that_never_comes() -> None:
    score, delivered = Recorder(), Delivered()
    batcher = _batcher(score, delivered, arriving=lambda: 1, max_delay=0.05)
    batcher.submit([7])
    assert delivered.wait_for(1) == {7: 14}
    batcher.stop(5)


def test_stop_scores_what_is_queued_then_ends_the_thread() -> None:
    hold = threading.Event()
    score, delivered = Recorder(hold), Delivered()
    batcher = _batcher(score, delivered)
    batcher.submit([1])
    assert score.started.wait(10)
    batcher.submit([2])
    stopper = threading.Thread(target=batcher.stop, args=(10,))
    stopper.start()
    hold.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert delivered.results == {1: 2, 2: 4}


class InParts:
    """Scores a job given as (name, parts) one part per call, None until its last part;
    remembers the order in which parts were scored, and can be held at each call."""

    def __init__(self, hold: threading.Semaphore | None = None) -> None:
        self.left: dict[str, int] = {}
        self.order: list[str] = []
        self.hold = hold
        self.started = threading.Event()

    def __call__(self, jobs: list[tuple[str, int]]) -> list[object]:
        results: list[object] = []
        for name, parts in jobs:
            self.started.set()
            if self.hold is not None:
                assert self.hold.acquire(timeout=10)
            left = self.left.setdefault(name, parts) - 1
            self.left[name] = left
            self.order.append(name)
            results.append(None if left else f"{name} done")
        return results


def test_a_job_in_parts_goes_back_behind_the_jobs_that_arrived_meanwhile() -> None:
    hold = threading.Semaphore(0)
    score, delivered = InParts(hold), Delivered()
    batcher = _batcher(score, delivered, max_jobs=1)  # type: ignore[arg-type]
    batcher.submit([("big", 3)])
    assert score.started.wait(10)
    batcher.submit([("small", 1), ("other", 1)])
    for _ in range(5):
        hold.release()
    results = delivered.wait_for(3)
    assert results == {
        ("big", 3): "big done",
        ("small", 1): "small done",
        ("other", 1): "other done",
    }
    assert score.order == ["big", "small", "other", "big", "big"]
    batcher.stop(5)


def test_a_job_withdrawn_between_its_parts_is_not_scored_again() -> None:
    hold = threading.Semaphore(0)
    score, delivered = InParts(hold), Delivered()
    batcher = _batcher(score, delivered)  # type: ignore[arg-type]
    batcher.submit([("big", 3)])
    assert score.started.wait(10)
    assert not batcher.withdraw(("big", 3))  # being scored: its current part finishes
    hold.release()
    batcher.submit([("small", 1)])
    hold.release()
    assert delivered.wait_for(1) == {("small", 1): "small done"}
    batcher.stop(5)
    assert score.order == ["big", "small"]


class Timed:
    """Doubles numbers after `seconds` per batch, and remembers the thread of each batch; a
    negative number is a job in two parts (None the first time it is scored)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.threads: list[str] = []
        self.started: set[int] = set()

    def __call__(self, jobs: list[int]) -> list[int | None]:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.seconds)
        results: list[int | None] = []
        for job in jobs:
            first_part = job < 0 and job not in self.started
            self.started.add(job)
            results.append(None if first_part else job * 2)
        return results


def _measured(
    score: Timed, delivered: Delivered, arriving: Callable[[], int] = lambda: 0, **limits: float
) -> Batcher[int, object]:
    """A batcher that may score on the submitting thread, after a first batch on its own."""
    batcher = _batcher(score, delivered, arriving, inline_seconds=0.5, **limits)  # type: ignore[arg-type]
    batcher.submit([1])
    delivered.wait_for(1)
    return batcher


def test_once_measured_as_cheap_a_batch_is_scored_on_the_submitting_thread() -> None:
    score, delivered = Timed(), Delivered()
    batcher = _measured(score, delivered)
    assert score.threads == ["batcher"], "an unmeasured model is scored on the scoring thread"
    assert batcher.submit([2, 3]) == [(2, 4), (3, 6)]
    assert score.threads[1:] == [threading.current_thread().name]
    assert delivered.results == {1: 2}, "pairs scored at once are the caller's to deliver"
    batcher.stop(5)


def test_a_model_that_costs_more_than_the_limit_stays_on_the_scoring_thread() -> None:
    score, delivered = Timed(seconds=0.05), Delivered()
    batcher = _batcher(score, delivered, inline_seconds=0.01)  # type: ignore[arg-type]
    for job in (1, 2, 3):
        assert batcher.submit([job]) == []
        delivered.wait_for(job)
    assert score.threads == ["batcher"] * 3
    batcher.stop(5)


def test_a_batch_is_not_scored_at_once_while_requests_arrive() -> None:
    score, delivered = Timed(), Delivered()
    arriving = [0]
    batcher = _measured(score, delivered, max_delay=0.01, arriving=lambda: arriving[0])
    arriving[0] = 1
    assert batcher.submit([2]) == [], "a request still being read may join the batch"
    assert delivered.wait_for(2) == {1: 2, 2: 4}
    arriving[0] = 0
    assert batcher.submit([3]) == [(3, 6)]
    batcher.stop(5)


def test_a_batch_is_not_scored_at_once_while_the_scoring_thread_is_busy() -> None:
    hold = threading.Event()
    hold.set()
    score, delivered = Recorder(hold), Delivered()
    batcher = _batcher(score, delivered, inline_seconds=0.5, max_jobs=2)
    batcher.submit([1])
    delivered.wait_for(1)
    hold.clear()
    assert batcher.submit([2, 3, 4]) == [], "more jobs than a batch holds"
    assert batcher.submit([5]) == [], "the scoring thread has jobs"
    hold.set()
    assert delivered.wait_for(5) == {job: job * 2 for job in range(1, 6)}
    batcher.stop(5)


def test_the_rest_of_a_job_scored_in_parts_goes_to_the_scoring_thread() -> None:
    score, delivered = Timed(), Delivered()
    batcher = _measured(score, delivered)
    caller = threading.current_thread().name
    assert batcher.submit([-1, 5]) == [(5, 10)]
    assert delivered.wait_for(2)[-1] == -2, "its second part is delivered by the thread"
    assert score.threads == ["batcher", caller, "batcher"]
    batcher.stop(5)
