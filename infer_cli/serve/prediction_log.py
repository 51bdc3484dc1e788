"""The prediction log (`serve --log-predictions DIR`): every scored row, written off the
serving path.

The scoring thread hands `add` what it already holds for an answered request (its columns as
validated, its labels and probabilities, its id and latency); `add` only appends that to a
bounded queue. A writer thread takes what has queued every `WRITE_SECONDS`, turns it into one
Arrow table per model and appends it to that model's file (`tables/log_files.py`), renamed
into place once complete. When the queue is full or the directory cannot be written, rows are
dropped and counted (`/metrics`, the shutdown summary); a request never waits for the log.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .access_log import log
from .stats import ServeStats

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ..tables.log_files import Outcome
    from .options import ServeOptions

WRITE_SECONDS = 0.5
"""How often the writer thread takes what has queued: each take is a row group or a run of
JSON lines, so rows are written in blocks rather than one at a time."""
MOST_GROUP_ROWS = 10_000
LEAST_RECORD_BYTES = 64
"""Less than any record takes in a file: a file is written in groups of at most its size
limit over this many rows, so that it ends near that limit, not a whole take past it."""
CLOSE_SECONDS = 30.0
"""Longest the server waits at shutdown for queued rows to be written."""


@dataclass(frozen=True)
class LoggedModel:
    """A served model as its log records name it."""

    name: str
    version: str
    sha256: str
    classes: tuple[str, ...] | None
    """Its classes, as names of the probability columns, when it gives probabilities."""


@dataclass(slots=True)
class LogEntry:
    """One answered request's rows, as the scoring thread had them."""

    request_id: str
    time: float
    """When its rows were scored, in seconds since the epoch."""
    latency: float
    """Seconds from reading its head to its reply being ready."""
    model: LoggedModel
    columns: Mapping[str, Any] | None
    """Its columns as the request gave them (the model's and any others, such as an id)."""
    frame: pd.DataFrame | None
    """Or its rows as a frame, for a request read into one."""
    validated: Any
    """The model's columns as validated: arrays by name, when the fast route took them."""
    values: Any
    probabilities: Any
    rows: int


class PredictionLog:
    """A bounded queue of `LogEntry`s and the thread that writes them to `directory`.

    `describe(job)` names a job's model and version as its records name them.
    """

    def __init__(
        self,
        directory: str | Path,
        stats: ServeStats,
        describe: Callable[[Any], tuple[str, str]],
        *,
        format: str = "parquet",
        rotate_bytes: int = 64 * 1024 * 1024,
        rotate_seconds: float = 300.0,
        queue_rows: int = 100_000,
    ) -> None:
        from ..tables.log_files import RollingFiles

        self.directory = Path(directory)
        self.stats = stats
        self.queue_rows = max(1, queue_rows)
        self._describe = describe
        self._models: dict[int, tuple[Any, LoggedModel]] = {}
        self._files = RollingFiles(self.directory, format, rotate_bytes, rotate_seconds)
        self._group_rows = max(1, min(MOST_GROUP_ROWS, rotate_bytes // LEAST_RECORD_BYTES))
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._queue: list[LogEntry] = []
        self._queued = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._failing: str | None = None
        stats.log_enabled = True

    @classmethod
    def open(
        cls, options: ServeOptions, stats: ServeStats, describe: Callable[[Any], tuple[str, str]]
    ) -> PredictionLog | None:
        """The log `options` ask for (`--log-predictions`), or None."""
        if not options.log_predictions:
            return None
        return cls(
            options.log_predictions,
            stats,
            describe,
            format=options.log_format,
            rotate_bytes=int(options.log_rotate_mb * 1024 * 1024),
            rotate_seconds=options.log_rotate_seconds,
            queue_rows=options.log_queue_rows,
        )

    def entry(
        self, job: Any, payload: Any, prepared: Any, values: Any, probabilities: Any
    ) -> LogEntry:
        """A job's scored rows (`payload` as the request gave them, `prepared` as validated),
        by reference: the writer thread turns them into records."""
        return LogEntry(
            job.request_id,
            time.time(),
            0.0,
            self._logged_model(job),
            payload.columns,
            payload.frame,
            prepared.features,
            values,
            probabilities,
            prepared.rows,
        )

    def record(
        self, job: Any, payload: Any, prepared: Any, values: Any, probabilities: Any
    ) -> None:
        """Queue a request's answered rows (`entry` and `add` in one)."""
        if payload is not None:
            self.add(job, [self.entry(job, payload, prepared, values, probabilities)])

    def add(self, job: Any, entries: list[LogEntry]) -> None:
        """Queue a job's answered rows, timed from its head to now; or drop and count them if
        the queue is full. Never waits for the disk."""
        received = job.request.received
        latency = time.perf_counter() - received if received else 0.0
        for entry in entries:
            entry.latency = latency
            self._add(entry)

    def _logged_model(self, job: Any) -> LoggedModel:
        model = job.model
        known = self._models.get(id(model))
        if known is None or known[0] is not model:
            if len(self._models) > 64:
                self._models.clear()
            known = (model, logged_model(model, *self._describe(job)))
            self._models[id(model)] = known
        return known[1]

    def _add(self, entry: LogEntry) -> None:
        with self._lock:
            accepted = not self._closed and self._queued + entry.rows <= self.queue_rows
            if accepted:
                self._queue.append(entry)
                self._queued += entry.rows
            # Threads do not survive a fork: each worker starts its own writer.
            if self._pid != os.getpid() and not self._closed:
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="prediction-log", daemon=True
                )
                self._thread.start()
        if not accepted:
            self.stats.record_log(dropped=entry.rows)

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Write what is queued, make every open file whole, and end the writer thread."""
        with self._lock:
            self._closed = True
            thread = self._thread if self._pid == os.getpid() else None
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            left, self._queue, self._queued = self._queued, [], 0
        if left:  # the writer did not finish in time
            self.stats.record_log(dropped=left)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._sleep())
            with self._lock:
                entries, self._queue, self._queued = self._queue, [], 0
                closing = self._closed
            try:
                if entries:
                    self._write(entries)
                self._account(self._files.close() if closing else self._files.roll_due())
            except Exception as exc:  # the log must never take the server down
                log(f"prediction log: internal error: {type(exc).__name__}: {exc}")
            if closing:
                return

    def _sleep(self) -> float:
        due = self._files.next_due()
        wait = WRITE_SECONDS if due is None else min(WRITE_SECONDS, due - time.monotonic())
        return max(wait, 0.0)

    def _write(self, entries: list[LogEntry]) -> None:
        by_model: dict[LoggedModel, list[LogEntry]] = {}
        for entry in entries:
            by_model.setdefault(entry.model, []).append(entry)
        for model, group in by_model.items():
            try:
                table = log_table(model, group)
            except Exception as exc:
                log(f"prediction log: cannot record {sum(e.rows for e in group)} row(s): {exc}")
                self.stats.record_log(dropped=sum(e.rows for e in group))
                continue
            key = model.sha256 + "\0" + model.name
            for start in range(0, table.num_rows, self._group_rows):
                self._account(self._files.write(key, table.slice(start, self._group_rows)))

    def _account(self, outcome: Outcome) -> None:
        if outcome.written or outcome.files or outcome.lost:
            self.stats.record_log(
                written=outcome.written, dropped=outcome.lost, files=outcome.files
            )
        if outcome.error and outcome.error != self._failing:
            log(
                f"prediction log: cannot write in {self.directory} ({outcome.error}); "
                "dropping and counting rows until it can"
            )
        elif outcome.files and self._failing:
            log(f"prediction log: writing in {self.directory} again")
        if outcome.error or outcome.files:
            self._failing = outcome.error


def log_table(model: LoggedModel, entries: list[LogEntry]) -> pa.Table:
    """The rows of `entries` (all of `model`) as one table: the record schema in README."""
    import pyarrow as pa

    rows = np.array([entry.rows for entry in entries])
    which = np.repeat(np.arange(len(entries)), rows)
    total = int(rows.sum())
    ids = pa.array([entry.request_id for entry in entries], pa.string()).take(which)
    seconds = np.array([entry.time for entry in entries])[which]
    latency = np.array([entry.latency for entry in entries])[which] * 1000
    columns: dict[str, Any] = {
        "request_id": ids,
        "row": pa.array(np.arange(total) - np.repeat(np.cumsum(rows) - rows, rows), pa.int32()),
        "time": pa.array((seconds * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC")),
        "model": pa.array([model.name] * total, pa.string()),
        "model_version": pa.array([model.version] * total, pa.string()),
        "model_sha256": pa.array([model.sha256] * total, pa.string()),
        "latency_ms": pa.array(latency, pa.float64()),
    }
    inputs = [_inputs(entry) for entry in entries]
    names = list(dict.fromkeys(name for given in inputs for name in given))
    fields = [
        _column([given.get(name) for given in inputs], [e.rows for e in entries]) for name in names
    ]
    columns["inputs"] = pa.StructArray.from_arrays(fields, names) if names else pa.nulls(total)
    columns["prediction"] = _column([e.values for e in entries], [e.rows for e in entries])
    if model.classes is not None:
        columns["probabilities"] = _probabilities(model.classes, entries)
    return pa.table(columns)


def _inputs(entry: LogEntry) -> dict[str, Any]:
    """The request's columns by name, the model's as validated where the route validated them."""
    if entry.frame is not None:
        given = {str(name): entry.frame[name].to_numpy() for name in entry.frame.columns}
    else:
        given = {str(name): values for name, values in (entry.columns or {}).items()}
    if isinstance(entry.validated, dict):
        given.update(entry.validated)
    return given


def _column(pieces: list[Any], rows: list[int]) -> pa.Array:
    """One column from each request's piece (an array, a list, or None for a request without
    it); values of mixed kinds, which Arrow cannot hold in one column, are written as text."""
    import pyarrow as pa

    arrays = [p for p in pieces if isinstance(p, np.ndarray)]
    same = len(arrays) == len(pieces) and all(a.dtype == arrays[0].dtype for a in arrays)
    if same and arrays[0].dtype.kind in "biuf":
        return pa.array(np.concatenate(arrays), from_pandas=True)
    values: list[Any] = []
    for piece, count in zip(pieces, rows, strict=True):
        if piece is None:
            values.extend([None] * count)
        elif isinstance(piece, np.ndarray):
            values.extend(piece.tolist())
        else:
            values.extend(piece)
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _probabilities(classes: tuple[str, ...], entries: list[LogEntry]) -> pa.Array:
    """A struct of one probability per class, null for the rows of a request that did not
    ask for them."""
    import pyarrow as pa

    width = len(classes)
    blocks = [
        np.full((e.rows, width), np.nan)
        if e.probabilities is None
        else np.asarray(e.probabilities, dtype=np.float64).reshape(e.rows, width)
        for e in entries
    ]
    matrix = np.concatenate(blocks)
    absent = np.repeat([e.probabilities is None for e in entries], [e.rows for e in entries])
    return pa.StructArray.from_arrays(
        [pa.array(matrix[:, i]) for i in range(width)],
        list(classes),
        mask=pa.array(absent, pa.bool_()),
    )


def logged_model(model: Any, name: str, version: str) -> LoggedModel:
    """How the log names `model`, served under `name` at `version`."""
    classes = None
    if model.can_predict_proba and model.card.classes:
        classes = tuple(str(c) for c in model.card.classes)
    return LoggedModel(name, version, model.card.sha256, classes)
