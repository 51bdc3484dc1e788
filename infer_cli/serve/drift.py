"""Drift in the server: the last `--drift-window` rows the served model scored, counted into
its training profile's bins, for `GET /drift` (JSON) and PSI gauges on `GET /metrics`.

The scoring thread only hands its rows over (`record`, a deque append); a thread of this
module codes them in bulk, so that a request's latency does not pay for the check. A reload
starts a new window for the new model. Each worker process keeps its own window.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.drift import PREDICTION, DriftCounts, ProfileBins, compare
from ..core.profiling import find_profile, model_columns
from ..errors import InferError
from .access_log import log
from .stats import _label as label_text

if TYPE_CHECKING:
    from ..core.model import Model, Prepared

DEFAULT_WINDOW = 10_000
# Rows waiting before the drift thread is woken early; else it codes what came every so often.
_WAKE_ROWS = 2048
_WAKE_SECONDS = 0.5
_LOOK_AGAIN_SECONDS = 5.0


@dataclass
class _Window:
    """One model's ring of coded rows and their counts (no ring without a profile)."""

    model: Model
    bins: ProfileBins | None
    source: str | None
    notice: str | None
    counts: DriftCounts | None = None
    ring: np.ndarray | None = None
    position: int = 0
    looked: float = field(default_factory=time.monotonic)
    """When its profile was looked for."""

    def add(self, codes: np.ndarray) -> None:
        assert self.bins is not None and self.counts is not None and self.ring is not None
        size = len(self.ring)
        codes = codes[-size:]
        added = len(codes)
        slots = (self.position + np.arange(added)) % size
        overflow = max(0, self.counts.rows + added - size)
        if overflow:
            self.counts.add_codes(self.bins, self.ring[slots[added - overflow :]], sign=-1)
        self.ring[slots] = codes
        self.counts.add_codes(self.bins, codes)
        self.position = (self.position + added) % size


class DriftMonitor:
    """The drift window of the model being served; `size` 0 turns it off."""

    def __init__(self, size: int = DEFAULT_WINDOW, profile: str | None = None) -> None:
        self.size = size
        self.profile = profile
        self._pending: deque[tuple[Model, list[Prepared], Any, int]] = deque()
        self._pending_rows = 0
        self._handing = threading.Lock()
        # The window of the model served and of the one before it, which requests already
        # decoded may still be scored with while a reload swaps it out.
        self._windows: dict[int, _Window] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, model: Model, prepared: list[Prepared], values: Any) -> None:
        """Hand over rows just scored, with their predictions; called on the scoring thread."""
        if self.size <= 0:
            return
        rows = sum(part.rows for part in prepared)
        with self._handing:
            self._pending.append((model, prepared, values, rows))
            self._pending_rows += rows
            # More than a window waiting: the oldest would be pushed out once counted anyway.
            while self._pending_rows - self._pending[0][3] >= self.size:
                self._pending_rows -= self._pending.popleft()[3]
            waiting = self._pending_rows
        if self._thread is None:
            # Started on first use, in the process that serves (after a worker's fork).
            self._thread = threading.Thread(target=self._run, name="drift", daemon=True)
            self._thread.start()
        if waiting >= _WAKE_ROWS:
            self._wake.set()

    def report(self, model: Model, name: str) -> dict[str, Any]:
        """The window of `model` as `GET /drift` shows it."""
        window = self._current(model)
        document: dict[str, Any] = {
            "model": name, "window": self.size, "profile": window.source, "notice": window.notice,
        }  # fmt: skip
        if window.bins is None or window.counts is None:
            return {**document, "rows": 0, "enough_rows": False, "max_psi": None}
        with self._lock:
            drift = compare(window.bins, window.counts)
        return {**document, **drift.to_dict()}

    def prometheus(self, model: Model | None, name: str) -> str:
        """The window's gauges in Prometheus text; PSI and shares only once it holds enough
        rows to judge, so that an alert on them never fires on a handful of rows."""
        if model is None or self.size <= 0:
            return ""
        window = self._current(model)
        if window.bins is None or window.counts is None:
            return ""
        with self._lock:
            drift = compare(window.bins, window.counts)
        model_label = f'model="{label_text(name)}"'
        lines = [
            "# HELP infer_cli_drift_window_rows Rows in the drift window (the last "
            "--drift-window rows scored).",
            "# TYPE infer_cli_drift_window_rows gauge",
            f"infer_cli_drift_window_rows{{{model_label}}} {drift.rows}",
        ]
        if not drift.enough_rows:
            return "\n".join(lines) + "\n"
        columns = {**drift.columns, **({PREDICTION: drift.prediction} if drift.prediction else {})}
        gauges = (
            ("psi", "Population stability index of the window against the training profile"),
            ("out_of_range_share", "Share of the window's values outside the training range"),
            ("unseen_share", "Share of the window's categories never seen in training"),
            ("missing_share", "Share of the window's rows missing the value"),
        )
        for figure, help_text in gauges:
            metric = f"infer_cli_drift_{figure}"
            lines += [
                f"# HELP {metric} {help_text}, by column (prediction: the predictions).",
                f"# TYPE {metric} gauge",
            ]
            for column_name, column in columns.items():
                value = getattr(column, figure)
                if value is not None:
                    lines.append(
                        f'{metric}{{{model_label},column="{label_text(column_name)}"}} {value:.6g}'
                    )
        lines += [
            "# HELP infer_cli_drift_max_psi The largest PSI of any column or the predictions.",
            "# TYPE infer_cli_drift_max_psi gauge",
            f"infer_cli_drift_max_psi{{{model_label}}} {drift.max_psi or 0.0:.6g}",
        ]
        return "\n".join(lines) + "\n"

    def _current(self, model: Model) -> _Window:
        """The window of `model` with every row handed over so far counted in it. A model
        without a profile is looked at again: `infer-cli profile` may have added one since."""
        self._flush()
        with self._lock:
            return self._window_of(model, look_again=True)

    def _run(self) -> None:
        while True:
            self._wake.wait(_WAKE_SECONDS)
            self._wake.clear()
            try:
                self._flush()
            except Exception as exc:  # a bug here must not stop the counting for good
                log(f"drift: rows could not be counted: {exc}")

    def _flush(self) -> None:
        with self._lock:
            with self._handing:
                pending, self._pending = self._pending, deque()
                self._pending_rows = 0
            # The requests of one model are coded in one pass: coding a column costs a dozen
            # array operations whatever its length, and requests come a few rows at a time.
            # By identity: a model's dataclass equality would compare its card field by field.
            for _, taken in groupby(pending, key=lambda item: id(item[0])):
                items = list(taken)
                model = items[0][0]
                window = self._window_of(model)
                if window.bins is None:
                    continue
                prepared = [part for item in items for part in item[1]]
                values = _predictions([item[2] for item in items])
                rows = sum(item[3] for item in items)
                window.add(window.bins.codes(_columns(model, prepared), values, rows))

    def _window_of(self, model: Model, look_again: bool = False) -> _Window:
        """The window of `model`, a new one for a model not counted so far. A model without
        a profile is looked at again (`infer-cli profile` may have added one since) when
        asked, and every few seconds."""
        known = self._windows.get(id(model))
        told = None
        if known is not None and known.model is model:
            stale = time.monotonic() - known.looked > _LOOK_AGAIN_SECONDS
            if known.bins is not None or not (look_again or stale):
                return known
            told = known.notice
        try:
            found = find_profile(model, self.profile)
            profile, source, notice = found.profile, found.source, found.notice
        except InferError as exc:
            profile, source, notice = None, None, f"{exc.message}, so drift is not checked"
        if notice and notice != told:
            log(f"drift: {notice}")
        window = _Window(model, None, source, notice)
        if profile is not None:
            window.bins = ProfileBins(profile)
            window.counts = DriftCounts.empty(window.bins)
            window.ring = np.zeros((self.size, len(window.bins.widths)), dtype=np.uint8)
        latest = list(self._windows.values())[-1:]
        self._windows = {id(kept.model): kept for kept in latest}
        self._windows[id(model)] = window
        return window


class DriftMonitors:
    """A drift window per model served, by name: each model has its own profile."""

    def __init__(self, size: int = DEFAULT_WINDOW, profile: str | None = None) -> None:
        self.size = size
        self.profile = profile
        self._by_name: dict[str, DriftMonitor] = {}

    def of(self, name: str) -> DriftMonitor:
        monitor = self._by_name.get(name)
        if monitor is None:
            monitor = self._by_name.setdefault(name, DriftMonitor(self.size, self.profile))
        return monitor


def _columns(model: Model, prepared: list[Prepared]) -> dict[str, Any]:
    """The rows of several requests as one array per input column."""
    parts = []
    for part in prepared:
        if not part.rows:
            continue
        if isinstance(part.features, dict):  # validated columns, already arrays
            parts.append(part.features)
        elif isinstance(part.features, np.ndarray):
            names = model.signature.names
            parts.append({name: part.features[:, i] for i, name in enumerate(names)})
        else:
            parts.append(model_columns(model.signature, part.features))
    if len(parts) == 1:
        return parts[0]
    names = list(parts[0]) if parts else []
    return {name: np.concatenate([part[name] for part in parts]) for name in names}


def _predictions(parts: list[Any]) -> Any:
    """The predictions of several scoring calls, in their order, as one array."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([np.asarray(part) for part in parts])
