"""What a running server counts, for the whole server however many workers answer: requests
by status, latencies, rows per model call and reloads, in all and for each model served.

Counts are 64-bit integers in memory that the worker processes share: mapped before the
workers fork, one block per worker, each writing only its own (no lock between processes)
and any of them reading the sum, so `GET /metrics` and the summary printed at shutdown
report the whole server whichever worker answers. A server of one process keeps its
counts in its own memory the same way.
"""

from __future__ import annotations

import bisect
import math
import mmap
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# Prometheus buckets, in seconds, for request latency and in rows for batch sizes.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# Percentiles come from log-spaced bins 2% wide, from 10 µs up: small and mergeable.
_FINE_BASE = 1e-5
_FINE_RATIO = math.log(1.02)
_FINE_BINS = 1000
_STATUSES = 600
"""A slot per HTTP status code, 0 to 599."""
RELOAD_OUTCOMES = ("ok", "failed")

# Where each count lies in a block of counters.
_LATENCY = _STATUSES
_LATENCY_NS = _LATENCY + len(LATENCY_BUCKETS) + 1
_BATCHES = _LATENCY_NS + 1
_BATCH_ROWS = _BATCHES + len(BATCH_BUCKETS) + 1
_RELOADS = _BATCH_ROWS + 1
_MODEL_SIZE = _RELOADS + len(RELOAD_OUTCOMES)
"""A model's block; the server's adds the fine latency bins after it."""
_FINE = _MODEL_SIZE
_LOG = _FINE + _FINE_BINS
LOG_COUNTS = ("written", "dropped", "files")
"""The prediction log's: rows in complete files, rows dropped, files made whole."""
_SERVER_SIZE = _LOG + len(LOG_COUNTS)


class _Block:
    """`size` counters in each of `slots` copies, one per worker, in memory shared across
    a fork when there are several; this process adds to its own copy (`use_slot`)."""

    def __init__(self, size: int, slots: int = 1) -> None:
        self.size, self.slots = size, slots
        self._memory: mmap.mmap | bytearray = (
            mmap.mmap(-1, size * slots * 8) if slots > 1 else bytearray(size * 8)
        )
        self._all = memoryview(self._memory).cast("q")
        self.mine = self._all[:size]

    def use_slot(self, slot: int) -> None:
        self.mine = self._all[slot * self.size : (slot + 1) * self.size]

    def per_slot(self, start: int, stop: int) -> list[int]:
        """The sum of counters `start` to `stop` in each worker's copy."""
        if self.slots == 1:
            return [sum(self.mine[start:stop])]
        import numpy as np

        counts = np.frombuffer(self._memory, dtype=np.int64).reshape(self.slots, self.size)
        return [int(value) for value in counts[:, start:stop].sum(axis=1)]

    def totals(self) -> list[int]:
        """Every counter, summed over the workers."""
        if self.slots == 1:
            return self.mine.tolist()
        import numpy as np

        counts = np.frombuffer(self._memory, dtype=np.int64).reshape(self.slots, self.size)
        return [int(value) for value in counts.sum(axis=0)]


@dataclass(frozen=True)
class Totals:
    """The counts of the whole server, or of one model, summed over the workers."""

    statuses: dict[int, int]
    latency_buckets: list[int]
    """Requests per latency bucket (not cumulative), the last one beyond the largest bound."""
    latency_seconds: float
    batch_buckets: list[int]
    batch_rows: int
    reloads: dict[str, int]
    fine: list[int]
    """Requests per fine latency bin (the server's only)."""
    log: dict[str, int]
    """The prediction log's counts (the server's only)."""

    @classmethod
    def of(cls, counts: list[int]) -> Totals:
        return cls(
            statuses={code: n for code, n in enumerate(counts[:_STATUSES]) if n},
            latency_buckets=counts[_LATENCY:_LATENCY_NS],
            latency_seconds=counts[_LATENCY_NS] / 1e9,
            batch_buckets=counts[_BATCHES:_BATCH_ROWS],
            batch_rows=counts[_BATCH_ROWS],
            reloads=dict(zip(RELOAD_OUTCOMES, counts[_RELOADS:_MODEL_SIZE], strict=True)),
            fine=counts[_FINE:_LOG],
            log=dict(zip(LOG_COUNTS, counts[_LOG:_SERVER_SIZE], strict=False)),
        )

    @property
    def batches(self) -> int:
        return sum(self.batch_buckets)


class ServeStats:
    """The server's counters, in all and per model, safe to update from many threads.

    `workers` > 1 maps them in memory the workers share once forked: each calls `use_slot`
    with its number first. The models counted apart are those named here, and, in a server
    of one process, any other the first time it is counted.
    """

    def __init__(self, models: Iterable[str] = (), workers: int = 1) -> None:
        self._lock = threading.Lock()
        self.workers = max(1, workers)
        self._server = _Block(_SERVER_SIZE, self.workers)
        self._models = {name: _Block(_MODEL_SIZE, self.workers) for name in models}
        self.log_enabled = False
        """Whether a prediction log is kept (`serve --log-predictions`)."""

    def use_slot(self, slot: int) -> None:
        """Count into worker `slot`'s copy (after the fork that made this worker)."""
        for block in (self._server, *self._models.values()):
            block.use_slot(slot)

    def record(self, status: int, seconds: float, model: str | None = None) -> None:
        """Count one answered request; `model` names the model it was routed to."""
        fine = int(math.log(max(seconds, _FINE_BASE) / _FINE_BASE) / _FINE_RATIO)
        coarse = _LATENCY + bisect.bisect_left(LATENCY_BUCKETS, seconds)
        status = min(max(status, 0), _STATUSES - 1)
        nanoseconds = int(seconds * 1e9)
        with self._lock:
            counts = self._server.mine
            counts[status] += 1
            counts[coarse] += 1
            counts[_LATENCY_NS] += nanoseconds
            counts[_FINE + min(fine, _FINE_BINS - 1)] += 1
            if model is not None:
                counts = self._model(model).mine
                counts[status] += 1
                counts[coarse] += 1
                counts[_LATENCY_NS] += nanoseconds

    def record_batch(self, rows: int, model: str | None = None) -> None:
        """Count one model call of `rows` rows."""
        bucket = _BATCHES + bisect.bisect_left(BATCH_BUCKETS, rows)
        with self._lock:
            counts = self._server.mine
            counts[bucket] += 1
            counts[_BATCH_ROWS] += rows
            if model is not None:
                counts = self._model(model).mine
                counts[bucket] += 1
                counts[_BATCH_ROWS] += rows

    def record_reload(self, outcome: str, model: str | None = None) -> None:
        """Count a hot reload, "ok" or "failed"."""
        slot = _RELOADS + RELOAD_OUTCOMES.index(outcome)
        with self._lock:
            self._server.mine[slot] += 1
            if model is not None:
                self._model(model).mine[slot] += 1

    def record_log(self, written: int = 0, dropped: int = 0, files: int = 0) -> None:
        """Count the prediction log's rows written in complete files, dropped, and files."""
        with self._lock:
            counts = self._server.mine
            counts[_LOG] += written
            counts[_LOG + 1] += dropped
            counts[_LOG + 2] += files

    def _model(self, name: str) -> _Block:
        block = self._models.get(name)
        if block is None:
            block = self._models[name] = _Block(_MODEL_SIZE)
        return block

    def totals(self, model: str | None = None) -> Totals:
        """The whole server's counts, or one model's, summed over the workers."""
        block = self._server if model is None else self._models.get(model)
        return Totals.of(block.totals() if block is not None else [0] * _SERVER_SIZE)

    def requests_by_worker(self) -> list[int]:
        """Requests each worker answered, by its number."""
        return self._server.per_slot(0, _STATUSES)

    @property
    def models(self) -> list[str]:
        """The models counted apart."""
        return list(self._models)

    @property
    def statuses(self) -> Counter[int]:
        return Counter(self.totals().statuses)

    @property
    def reloads(self) -> Counter[str]:
        return Counter(self.totals().reloads)

    @property
    def log_rows(self) -> Counter[str]:
        """The prediction log's rows "written" (in complete files) and "dropped", and "files"."""
        return Counter(self.totals().log)

    @property
    def requests(self) -> int:
        return sum(self.totals().statuses.values())

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.totals().statuses.items() if status >= 400)

    @property
    def batches(self) -> int:
        return self.totals().batches

    @property
    def mean_batch_rows(self) -> float:
        totals = self.totals()
        return totals.batch_rows / totals.batches if totals.batches else 0.0

    def percentile(self, share: float) -> float:
        """The latency, in seconds, below which `share` of the requests were answered."""
        bins = self.totals().fine
        total = sum(bins)
        if not total:
            return 0.0
        rank = share * total
        seen = 0
        for index, count in enumerate(bins):
            seen += count
            if seen >= rank:
                return float(_FINE_BASE * math.exp(_FINE_RATIO * (index + 0.5)))
        return float(_FINE_BASE * math.exp(_FINE_RATIO * _FINE_BINS))


def _label(value: str) -> str:
    """A Prometheus label's value, escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
