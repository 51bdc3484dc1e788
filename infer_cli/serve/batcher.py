"""Adaptive micro-batching: requests that arrive together are scored in one model call.

The server's loop hands each prediction job to `submit` and goes back to its sockets. One
scoring thread takes every job queued so far (up to `max_jobs`) as a batch, so a lone
request is scored at once, and under load a batch grows to whatever arrived during the
previous model call. Before a batch it waits up to `max_delay` seconds, and only while
`arriving()` says requests are still being read: waiting never delays a request that has
nothing to wait for.

A server keeps a batcher per model (`Batchers`): jobs for different models never share a
batch, and a model that is slow holds up only its own jobs.

A job may be scored in parts: `process` gives None for a job not finished yet, which goes
back to the end of the queue, so that a request of a million rows takes its turns between
the small ones instead of holding the scoring thread for seconds.

A batch that is cheap is scored at once on the thread that submits it, when the scoring
thread is idle and nothing is arriving: handing it over would cost two thread switches and
a wake-up, more than scoring a few rows of a linear model. The scoring thread holds the
interpreter lock while it scores anyway, so a batch within `inline_seconds` (by what the
model's recent batches cost per byte of request) holds the submitting loop no longer than
the thread would have.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")
Item = TypeVar("Item")

COST_WEIGHT = 0.25
"""How much the latest batch moves the estimate of what a batch costs."""


def split_by_rows(items: list[Item], rows: Callable[[Item], int], most: int) -> list[list[Item]]:
    """Split a batch into model calls of at most `most` rows (a bigger item alone), in order."""
    calls: list[list[Item]] = []
    total = most
    for item in items:
        if total + rows(item) > most:
            calls.append([])
            total = 0
        calls[-1].append(item)
        total += rows(item)
    return calls


class Batcher(Generic[Job, Result]):
    """Runs `process(batch) -> one result per job` on its own thread, one batch at a time,
    and hands each batch's `(job, result)` pairs to `deliver`; a None result queues its job
    again, behind those that arrived meanwhile.

    `process` should not raise; if it does, each job of the batch gets `fail(job, error)`.

    `submit` scores a batch on the caller's thread instead when the scoring thread is idle,
    nothing is `arriving()`, and the batch should take at most `inline_seconds` by the cost
    per unit of `size(job)` measured on earlier batches (none until one has been measured).
    """

    def __init__(
        self,
        process: Callable[[list[Job]], list[Result | None]],
        deliver: Callable[[list[tuple[Job, Result]]], None],
        fail: Callable[[Job, BaseException], Result],
        *,
        max_jobs: int = 64,
        max_delay: float = 0.002,
        arriving: Callable[[], int] = lambda: 0,
        inline_seconds: float = 0.0,
        size: Callable[[Job], int] = lambda job: 1,
    ) -> None:
        self._process = process
        self._deliver = deliver
        self._fail = fail
        self.max_jobs = max(1, max_jobs)
        self.max_delay = max(0.0, max_delay)
        self._arriving = arriving
        self.inline_seconds = inline_seconds
        self._size = size
        self._cost: float | None = None
        """Seconds per unit of size of recent batches, once one has been scored."""
        self._queue: deque[Job] = deque()
        self._scoring: set[Job] = set()
        """Jobs of the batch being scored; one withdrawn meanwhile is not queued again."""
        self._changed = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the scoring thread (after any fork: threads do not survive one)."""
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Score what is queued, then end the scoring thread."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, jobs: list[Job]) -> list[tuple[Job, Result]]:
        """Queue `jobs`, each of whose results reaches `deliver` once its batch is scored; or
        score them at once if they are cheap, and give back the `(job, result)` pairs of
        those finished, for the caller to deliver (unfinished ones are queued)."""
        size = sum(map(self._size, jobs))
        with self._changed:
            if not self._cheap(len(jobs), size):
                self._queue.extend(jobs)
                self._changed.notify()
                return []
            self._scoring.update(jobs)
        return self._score(jobs, size)

    def _cheap(self, jobs: int, size: int) -> bool:
        if self._cost is None or self._queue or self._scoring or jobs > self.max_jobs:
            return False
        if self.max_delay and self._arriving():
            return False
        return self._cost * size <= self.inline_seconds

    def withdraw(self, job: Job) -> bool:
        """Take `job` back if its batch has not started; False if it is being scored (then
        it is not queued again for its next part)."""
        with self._changed:
            try:
                self._queue.remove(job)
            except ValueError:
                self._scoring.discard(job)
                return False
            return True

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            done = self._score(batch, sum(map(self._size, batch)))
            if done:
                self._deliver(done)

    def _score(self, batch: list[Job], size: int) -> list[tuple[Job, Result]]:
        """Score `batch` (of `size` units in all): the pairs finished; the others go back to
        the queue."""
        began = time.perf_counter()
        try:
            results = self._process(batch)
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except BaseException as exc:
            results = [self._fail(job, exc) for job in batch]
        cost = (time.perf_counter() - began) / max(1, size)
        done: list[tuple[Job, Result]] = []
        with self._changed:
            last = self._cost
            self._cost = cost if last is None else last + COST_WEIGHT * (cost - last)
            for job, result in zip(batch, results, strict=True):
                if result is not None:
                    done.append((job, result))
                elif job in self._scoring:
                    self._queue.append(job)
            self._scoring.clear()
            if self._queue:
                self._changed.notify()
        return done

    def _next_batch(self) -> list[Job] | None:
        with self._changed:
            while not self._queue:
                if self._stopping:
                    return None
                self._changed.wait()
            self._gather()
            count = min(len(self._queue), self.max_jobs)
            batch = [self._queue.popleft() for _ in range(count)]
            self._scoring.update(batch)
            return batch

    def _gather(self) -> None:
        """Let requests still being read join the batch, for at most `max_delay`."""
        if not self.max_delay:
            return
        deadline = time.monotonic() + self.max_delay
        while self._arriving() and len(self._queue) < self.max_jobs:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._changed.wait(remaining)


class Batchers(Generic[Job, Result]):
    """A batcher per key (the model's name), each on its own thread, made by `make` and
    started at its key's first job."""

    def __init__(self, key: Callable[[Job], str], make: Callable[[], Batcher[Job, Result]]) -> None:
        self._key = key
        self._make = make
        self._batchers: dict[str, Batcher[Job, Result]] = {}

    def submit(self, jobs: list[Job]) -> list[tuple[Job, Result]]:
        """Queue each job with its key's batcher, those of one key together; the pairs of
        those scored at once (see `Batcher.submit`)."""
        if not jobs:
            return []
        keys = [self._key(job) for job in jobs]
        by_key: dict[str, list[Job]] = {keys[0]: jobs} if len(set(keys)) == 1 else {}
        for key, job in zip(keys, jobs, strict=True) if not by_key else ():
            by_key.setdefault(key, []).append(job)
        done: list[tuple[Job, Result]] = []
        for key, keyed in by_key.items():
            batcher = self._batchers.get(key)
            if batcher is None:
                batcher = self._batchers[key] = self._make()
                batcher.start()
            done += batcher.submit(keyed)
        return done

    def withdraw(self, job: Job) -> bool:
        """`Batcher.withdraw` on the job's batcher."""
        batcher = self._batchers.get(self._key(job))
        return batcher is not None and batcher.withdraw(job)

    def stop(self, timeout: float) -> None:
        """Stop every batcher, waiting at most `timeout` seconds in all."""
        deadline = time.monotonic() + timeout
        for batcher in self._batchers.values():
            batcher.stop(max(0.0, deadline - time.monotonic()))
