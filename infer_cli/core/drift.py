"""Drift: new rows counted into a training profile's bins, and compared with it.

`ProfileBins` gives each row a small code per column (which bin its value falls in, or
missing, or beyond the training range); `DriftCounts` adds codes up as rows stream past and
merges with the counts of other partitions; `compare` turns counts into the figures a person
or a cron job reads: the population stability index (PSI) of each column and of the
predictions, the shares of values outside the training range, of unseen categories, and of
missing values then and now. Pure functions of arrays, no I/O.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .coded import Coded
from .profile import ColumnProfile, Profile, as_numbers, factorize_categories, text_lengths

DRIFT_PSI = 0.25
"""The usual reading of PSI: below 0.1 no change, 0.1 to 0.25 some, above 0.25 a shift."""
MIN_ROWS = 200
"""Fewer rows than this say too little about a distribution for their PSI to mean anything."""
PREDICTION = "prediction"
# Half a row added to every bin keeps an empty bin's PSI finite, and small.
_SMOOTHING = 0.5


class ProfileBins:
    """How rows are coded against a profile: per column, code 0 is a missing value; a number
    (a text's length) is 1 below the training range, then one code per bin, then one above
    the range; a category one code per category listed, then one for any other."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.names = list(profile.columns)
        self.columns = [profile.columns[name] for name in self.names]
        if profile.prediction is not None:
            self.columns.append(profile.prediction)
        self.widths = [_width(column) for column in self.columns]
        self._lookups = [
            {key: position + 1 for position, key in enumerate(column.categories)}
            if column.kind == "categorical"
            else None
            for column in self.columns
        ]

    def codes(
        self,
        columns: Mapping[str, Any],
        predictions: Any | None,
        rows: int,
        coded: Mapping[str, Coded] | None = None,
    ) -> np.ndarray:
        """The codes of `rows` rows, one column per profiled column (the predictions last);
        a column the rows do not have is coded missing. `coded`: some of the columns also as
        codes into their distinct values, each distinct value then coded once."""
        # Column-major: each column's codes are counted in one contiguous pass.
        codes = np.zeros((rows, len(self.columns)), dtype=np.uint8, order="F")
        for position, column in enumerate(self.columns):
            if position < len(self.names):
                values = columns.get(self.names[position])
            else:
                values = predictions
            if values is None or rows == 0:
                continue
            given = (
                coded.get(self.names[position]) if coded and position < len(self.names) else None
            )
            if given is not None and column.kind == "categorical":
                # A value's code depends on the value alone.
                codes[:, position] = self._code(position, column, given.distinct)[given.codes]
            else:
                codes[:, position] = self._code(position, column, np.asarray(values))
        return codes

    def _code(self, position: int, column: ColumnProfile, values: np.ndarray) -> np.ndarray:
        if column.kind == "categorical":
            lookup = self._lookups[position]
            assert lookup is not None
            other = len(column.categories) + 1
            positions, keys = factorize_categories(values, boolean=column.boolean)
            found = np.array([0, *(lookup.get(key, other) for key in keys)], dtype=np.uint8)
            return found[positions + 1]
        numbers = text_lengths(values) if column.kind == "text" else as_numbers(values)
        edges = np.asarray(column.edges, dtype=np.float64)
        # As searchsorted(side="left"), a count of the edges below each value; with ten
        # edges at most, ten comparisons run several times faster than a binary search.
        codes = np.full(len(numbers), 2, dtype=np.int64)
        for edge in edges.tolist():
            codes += numbers > edge
        if column.low is not None and column.high is not None:
            codes[numbers < column.low] = 1
            codes[numbers > column.high] = len(edges) + 3
        codes[np.isnan(numbers)] = 0
        return codes.astype(np.uint8)


@dataclass
class DriftCounts:
    """Rows counted into a profile's bins: one array of counts per profiled column."""

    rows: int = 0
    counts: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0
    """Time spent coding and counting, so that a run can say what the check cost."""

    @classmethod
    def empty(cls, bins: ProfileBins) -> DriftCounts:
        return cls(0, [np.zeros(width, dtype=np.int64) for width in bins.widths])

    def add_codes(self, bins: ProfileBins, codes: np.ndarray, sign: int = 1) -> None:
        """Count (or, with `sign` -1, uncount) rows already coded."""
        for position, width in enumerate(bins.widths):
            self.counts[position] += sign * np.bincount(codes[:, position], minlength=width)
        self.rows += sign * len(codes)

    def observe(
        self,
        bins: ProfileBins,
        columns: Mapping[str, Any],
        predictions: Any | None,
        rows: int,
        coded: Mapping[str, Coded] | None = None,
    ) -> None:
        """Count `rows` new rows, given column by column, with their predictions."""
        began = time.perf_counter()
        self.add_codes(bins, bins.codes(columns, predictions, rows, coded))
        self.seconds += time.perf_counter() - began

    def merge(self, other: DriftCounts) -> None:
        """Add the counts of another part of the same input (a Dask partition)."""
        if not self.counts:
            self.counts = [np.zeros_like(counts) for counts in other.counts]
        for mine, theirs in zip(self.counts, other.counts, strict=True):
            mine += theirs
        self.rows += other.rows
        self.seconds += other.seconds


@dataclass(frozen=True)
class ColumnDrift:
    """How one column (or the predictions) compares with its training profile."""

    kind: str
    psi: float
    missing_share: float
    training_missing_share: float
    out_of_range_share: float | None
    unseen_share: float | None
    drifted: bool
    labels: list[str]
    training: list[float]
    current: list[float]
    """The share of rows in each bin (the first is missing values), then and now."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "psi": _round(self.psi),
            "missing_share": _round(self.missing_share),
            "training_missing_share": _round(self.training_missing_share),
            "missing_share_change": _round(self.missing_share - self.training_missing_share),
            "out_of_range_share": _round(self.out_of_range_share),
            "unseen_share": _round(self.unseen_share),
            "drifted": self.drifted,
            "bins": {
                "labels": self.labels,
                "training": [_round(share) for share in self.training],
                "current": [_round(share) for share in self.current],
            },
        }


@dataclass(frozen=True)
class Drift:
    """Rows compared with a training profile, column by column and for the predictions.

    With fewer than `min_rows` rows nothing is flagged: `enough_rows` is False."""

    rows: int
    min_rows: int
    threshold: float
    columns: dict[str, ColumnDrift]
    prediction: ColumnDrift | None

    @property
    def enough_rows(self) -> bool:
        return self.rows >= self.min_rows

    @property
    def max_psi(self) -> float | None:
        """The largest PSI of any column or the predictions (None when nothing was counted)."""
        every = [*self.columns.values(), *([self.prediction] if self.prediction else [])]
        return max((column.psi for column in every), default=None) if self.rows else None

    @property
    def drifted(self) -> list[str]:
        """The columns (and `prediction`) past the threshold, the largest PSI first."""
        every = {**self.columns, **({PREDICTION: self.prediction} if self.prediction else {})}
        flagged = [name for name, column in every.items() if column.drifted]
        return sorted(flagged, key=lambda name: -every[name].psi)

    def beyond(self, limit: float) -> list[str]:
        """The columns (and `prediction`) whose PSI exceeds `limit`, given enough rows."""
        if not self.enough_rows:
            return []
        every = {**self.columns, **({PREDICTION: self.prediction} if self.prediction else {})}
        return sorted(
            (name for name, column in every.items() if column.psi > limit),
            key=lambda name: -every[name].psi,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "min_rows": self.min_rows,
            "enough_rows": self.enough_rows,
            "threshold": self.threshold,
            "max_psi": _round(self.max_psi),
            "drifted": self.drifted,
            "columns": {name: column.to_dict() for name, column in self.columns.items()},
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }


def compare(
    bins: ProfileBins,
    counts: DriftCounts,
    *,
    threshold: float = DRIFT_PSI,
    min_rows: int = MIN_ROWS,
) -> Drift:
    """The drift of counted rows from the profile they were counted against; a column is
    flagged when its PSI exceeds `threshold` and there are at least `min_rows` rows."""
    profile = bins.profile
    judged = counts.rows >= min_rows
    compared = [
        _compare_column(column, column_counts, profile.rows, threshold if judged else math.inf)
        for column, column_counts in zip(bins.columns, counts.counts, strict=True)
    ]
    columns = dict(zip(bins.names, compared, strict=False))
    prediction = compared[-1] if profile.prediction is not None else None
    return Drift(counts.rows, min_rows, threshold, columns, prediction)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """The population stability index of `actual` shares against `expected` shares (both
    positive, over the same bins): the sum of (actual - expected) * ln(actual / expected)."""
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _compare_column(
    column: ColumnProfile, counts: np.ndarray, training_rows: int, threshold: float
) -> ColumnDrift:
    rows = int(counts.sum())
    if column.kind == "categorical":
        binned = counts.astype(np.float64)
        beyond = None
        unseen = int(counts[-1]) if column.complete else None
    else:
        # Values beyond the training range belong to the outermost bins for the PSI.
        inner = counts[2:-1].astype(np.float64)
        inner[0] += counts[1]
        inner[-1] += counts[-1]
        binned = np.concatenate([[float(counts[0])], inner])
        beyond = int(counts[1] + counts[-1])
        unseen = None
    present = rows - int(counts[0])
    training = np.array(
        [column.missing_share, *((1 - column.missing_share) * np.asarray(column.shares))]
    )
    current = binned / rows if rows else np.zeros_like(training)
    index = psi(_smoothed(training * training_rows), _smoothed(binned)) if rows else 0.0
    return ColumnDrift(
        kind=column.kind,
        psi=max(index, 0.0),
        missing_share=float(current[0]),
        training_missing_share=column.missing_share,
        out_of_range_share=None if beyond is None else _part(beyond, present),
        unseen_share=None if unseen is None else _part(unseen, present),
        drifted=index > threshold,
        labels=["(missing)", *column.bin_labels],
        training=training.tolist(),
        current=current.tolist(),
    )


def _smoothed(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64) + _SMOOTHING
    return counts / counts.sum()


def _width(column: ColumnProfile) -> int:
    if column.kind == "categorical":
        return len(column.categories) + 2
    return len(column.shares) + 3


def _part(count: int, total: int) -> float:
    return count / total if total else 0.0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
