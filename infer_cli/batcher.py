"""Adaptive micro-batching: requests that arrive together are scored in one model call.

There is no batching thread. The first caller to find the batcher idle leads: it scores
its own job together with whatever is already queued, answers every caller in the batch,
and hands the lead to the oldest queued job, if any. So a lone request runs at once, on
its own thread, and under load the batch grows to whatever arrived during the previous
model call (capped by `max_rows`). A leader waits up to `max_delay` seconds for company
only while other requests are known to be on their way (announced through `arriving()`
but not yet submitted), so waiting never delays a request with nothing to wait for.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from .errors import RequestTimeout

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Job(Generic[Item, Result]):
    __slots__ = ("error", "finished", "item", "lead", "result", "rows", "wake")

    def __init__(self, item: Item, rows: int) -> None:
        self.item = item
        self.rows = rows
        # A held lock that the waker releases: the cheapest wake-up CPython has.
        self.wake = threading.Lock()
        self.wake.acquire()
        self.lead = False
        self.finished = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class Batcher(Generic[Item, Result]):
    """Collects concurrent jobs and scores them together with `score`.

    `score(items)` returns one result per item, in order. If it raises for a batch of
    several jobs, each job is scored again on its own, so one bad request fails alone.
    """

    def __init__(
        self,
        score: Callable[[list[Item]], list[Result]],
        *,
        max_rows: int = 64,
        max_delay: float = 0.002,
    ) -> None:
        self._score = score
        self.max_rows = max(1, max_rows)
        self.max_delay = max(0.0, max_delay)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[_Job[Item, Result]] = deque()
        self._busy = False
        self._arriving = 0

    @contextmanager
    def arriving(self) -> Iterator[Callable[[Item, int, float | None], Result]]:
        """Announce a request that is being read; yields the `submit` to call once decoded.

        While a request is announced, a leader may wait (up to `max_delay`) to include it.
        """
        submitted = False

        def submit(item: Item, rows: int, timeout: float | None) -> Result:
            nonlocal submitted
            submitted = True
            return self._submit(item, rows, timeout, announced=True)

        with self._lock:
            self._arriving += 1
        try:
            yield submit
        finally:
            if not submitted:
                with self._lock:
                    self._arriving -= 1
                    self._changed.notify_all()

    def submit(self, item: Item, rows: int, timeout: float | None = None) -> Result:
        """Score `item` (holding `rows` rows), batched with concurrent jobs; wait for its result.

        Raises `RequestTimeout` if no result came within `timeout` seconds.
        """
        return self._submit(item, rows, timeout, announced=False)

    def _submit(self, item: Item, rows: int, timeout: float | None, announced: bool) -> Result:
        job: _Job[Item, Result] = _Job(item, rows)
        with self._lock:
            if announced:
                self._arriving -= 1
            if self._busy:
                self._queue.append(job)
                self._changed.notify_all()
            else:
                self._busy = True
                job.lead = True
        if not job.lead and not job.wake.acquire(timeout=-1 if timeout is None else timeout):
            with self._lock:
                if job in self._queue:
                    self._queue.remove(job)
                    raise RequestTimeout(f"no answer within {timeout:g} s; the server is busy")
                abandoned = not job.lead and not job.finished
            if abandoned:
                raise RequestTimeout(f"the model did not answer within {timeout:g} s")
            job.wake.acquire()
        if not job.finished:
            self._lead(job)
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _lead(self, first: _Job[Item, Result]) -> None:
        self._gather(first)
        batch = [first]
        with self._lock:
            rows = first.rows
            while self._queue and rows + self._queue[0].rows <= self.max_rows:
                job = self._queue.popleft()
                rows += job.rows
                batch.append(job)
        try:
            self._run(batch)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue.popleft()
                    successor.lead = True
                    successor.wake.release()
                else:
                    self._busy = False

    def _gather(self, first: _Job[Item, Result]) -> None:
        """Let requests that are already here join the batch, for at most `max_delay`.

        Under load the other threads' requests have arrived but wait for the interpreter
        lock, which the previous model call held: yielding it lets them queue. This goes on
        while the queue grows or announced requests are still being read; with nothing
        else in flight it costs one yield.
        """
        if not self.max_delay:
            return
        deadline = time.monotonic() + self.max_delay
        seen = -1
        while True:
            with self._lock:
                queued = len(self._queue)
                if not self._arriving and queued == seen:
                    return
                if first.rows + sum(job.rows for job in self._queue) >= self.max_rows:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                if self._arriving:
                    self._changed.wait(remaining)
            seen = queued
            os.sched_yield()

    def _run(self, batch: list[_Job[Item, Result]]) -> None:
        try:
            results = self._score([job.item for job in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except BaseException as exc:
            if len(batch) == 1:
                _finish(batch[0], None, exc)
                return
            for job in batch:
                try:
                    _finish(job, self._score([job.item])[0], None)
                except BaseException as single:
                    _finish(job, None, single)
            return
        for job, result in zip(batch, results, strict=True):
            _finish(job, result, None)


def _finish(job: _Job[Any, Any], result: Any, error: BaseException | None) -> None:
    job.result = result
    job.error = error
    job.finished = True
    job.wake.release()
