"""A model's training profile: a compact description of each input column and of the
predictions on the training rows, saved with the model, against which later data is judged.

Every column is described the same way: the share of rows missing a value, and bins over
the values present. Numbers get about ten quantile bins with the range seen; categories the
share of each (the most frequent ones, the rest as "other"); free text the share of empty
texts and bins of length. A profile is a few kilobytes, whatever the size of the data.
Pure functions of arrays, no I/O: `drift` counts new rows into these bins, `profiling` finds
and reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

PROFILE_VERSION = 1
QUANTILE_BINS = 10
MAX_CATEGORIES = 50
"""Categories listed by name; past this many, the rarer ones are counted together as other."""

Kind = Literal["numeric", "categorical", "text"]
KINDS: tuple[str, ...] = ("numeric", "categorical", "text")
_TRUTH = {"true": "true", "false": "false", "1": "true", "0": "false"}


@dataclass(frozen=True)
class ColumnProfile:
    """One column of the training data (or the predictions), as a profile records it.

    `shares` are over the values present (`missing_share` is over all rows). Numeric and
    text columns bin their values (text: its length in characters) at `edges`, a value `v`
    going to the first bin whose edge is at least `v`, and the last bin past every edge;
    `low` and `high` are the smallest and largest values seen. A categorical column has a
    bin per category in `categories` and one for every other value; `complete` says the
    categories are every one seen in training, so that another is unseen rather than rare.
    """

    kind: Kind
    missing_share: float
    shares: tuple[float, ...]
    edges: tuple[float, ...] = ()
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] = ()
    complete: bool = True
    boolean: bool = False
    """Categories that are truth values, read in any spelling (True, true, 1)."""

    @property
    def bin_labels(self) -> list[str]:
        """A name for each bin of `shares`, for tables and charts."""
        if self.kind == "categorical":
            return [*self.categories, "(other)"]
        unit = " chars" if self.kind == "text" else ""
        if not self.edges:
            return [f"{_short(self.low)}{unit}" if self.low is not None else "(all)"]
        labels = [f"≤ {_short(self.edges[0])}{unit}"]
        labels += [
            f"{_short(a)} to {_short(b)}{unit}"
            for a, b in zip(self.edges[:-1], self.edges[1:], strict=True)
        ]
        labels.append(f"> {_short(self.edges[-1])}{unit}")
        return labels

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "missing_share": self.missing_share}
        if self.kind == "categorical":
            data["categories"] = dict(zip(self.categories, self.shares[:-1], strict=True))
            data["other_share"] = self.shares[-1]
            data["complete"] = self.complete
            if self.boolean:
                data["boolean"] = True
        else:
            prefix = "length_" if self.kind == "text" else ""
            data[f"{prefix}min"] = self.low
            data[f"{prefix}max"] = self.high
            data[f"{prefix}edges"] = list(self.edges)
            data[f"{prefix}shares"] = list(self.shares)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        kind = data["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown column kind {kind!r}")
        missing = float(data["missing_share"])
        if kind == "categorical":
            categories = {str(name): float(share) for name, share in data["categories"].items()}
            return cls(
                kind="categorical",
                missing_share=missing,
                shares=(*categories.values(), float(data.get("other_share", 0.0))),
                categories=tuple(categories),
                complete=bool(data.get("complete", True)),
                boolean=bool(data.get("boolean", False)),
            )
        prefix = "length_" if kind == "text" else ""
        edges = tuple(float(edge) for edge in data[f"{prefix}edges"])
        shares = tuple(float(share) for share in data[f"{prefix}shares"])
        if len(shares) != len(edges) + 1 or list(edges) != sorted(set(edges)):
            raise ValueError("edges and shares do not fit together")
        low, high = data.get(f"{prefix}min"), data.get(f"{prefix}max")
        return cls(
            kind=kind,
            missing_share=missing,
            shares=shares,
            edges=edges,
            low=None if low is None else float(low),
            high=None if high is None else float(high),
        )


@dataclass(frozen=True)
class Profile:
    """The profile of a model's training rows: each input column's, and the predictions'."""

    rows: int
    columns: dict[str, ColumnProfile]
    prediction: ColumnProfile | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """What the profile was made from (the file, when `infer-cli profile` made it)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PROFILE_VERSION,
            "rows": self.rows,
            **self.extra,
            "columns": {name: column.to_dict() for name, column in self.columns.items()},
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """A profile read back; a ValueError (or KeyError, TypeError) for one that is not."""
        version = int(data.get("version", PROFILE_VERSION))
        if version > PROFILE_VERSION:
            raise ValueError(f"profile version {version} is newer than this infer-cli reads")
        prediction = data.get("prediction")
        known = {"version", "rows", "columns", "prediction"}
        return cls(
            rows=int(data["rows"]),
            columns={
                str(name): ColumnProfile.from_dict(column)
                for name, column in data["columns"].items()
            },
            prediction=None if prediction is None else ColumnProfile.from_dict(prediction),
            extra={key: value for key, value in data.items() if key not in known},
        )


def column_kind(column_type: str, values: np.ndarray) -> Kind:
    """How a column of a signature's type (float, integer, string, text, boolean, any) is
    profiled; a column of type any by what its values are."""
    if column_type in ("float", "integer"):
        return "numeric"
    if column_type == "text":
        return "text"
    if column_type == "any" and values.dtype.kind in "iuf":
        return "numeric"
    if column_type == "any" and values.dtype == object and len(values):
        present = values[~missing_mask(values)]
        numbers = [type(value) in (int, float) for value in present[:1000].tolist()]
        if numbers and all(numbers):
            return "numeric"
    return "categorical"


def build_profile(
    columns: Mapping[str, tuple[Kind, np.ndarray]],
    predictions: tuple[Kind, np.ndarray] | None,
    *,
    boolean: frozenset[str] = frozenset(),
    classes: list[Any] | None = None,
) -> Profile:
    """The profile of rows given column by column as `(kind, values)`; the predictions'
    profile lists every one of `classes` (a classifier's), also those never predicted."""
    rows = len(next(iter(columns.values()))[1]) if columns else 0
    profiled = {
        name: profile_column(kind, values, boolean=name in boolean)
        for name, (kind, values) in columns.items()
    }
    prediction = None
    if predictions is not None:
        kind, values = predictions
        prediction = profile_column(kind, values, classes=classes)
        rows = rows or len(values)
    return Profile(rows, profiled, prediction)


def profile_column(
    kind: Kind, values: np.ndarray, *, boolean: bool = False, classes: list[Any] | None = None
) -> ColumnProfile:
    values = np.asarray(values)
    if kind == "numeric":
        return _profile_numbers(as_numbers(values))
    if kind == "text":
        return _profile_numbers(text_lengths(values), text=True)
    return _profile_categories(values, boolean=boolean, classes=classes)


def _profile_numbers(numbers: np.ndarray, *, text: bool = False) -> ColumnProfile:
    """Quantile bins of the numbers present (lengths of the texts not empty, for text)."""
    kind: Kind = "text" if text else "numeric"
    rows = len(numbers)
    missing = np.isnan(numbers)
    present = numbers[~missing]
    if not len(present):
        return ColumnProfile(kind, _share(rows, rows), (1.0,))
    quantiles = np.quantile(present, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1])
    # Whole numbers with few values (counts, lengths) give repeated quantiles: one edge each.
    edges = np.unique([_number(edge) for edge in quantiles])
    edges = edges[edges < present.max()]
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    return ColumnProfile(
        kind=kind,
        missing_share=_share(int(missing.sum()), rows),
        shares=tuple(_share(int(count), len(present)) for count in counts),
        edges=tuple(float(edge) for edge in edges),
        low=_number(present.min()),
        high=_number(present.max()),
    )


def _profile_categories(
    values: np.ndarray, *, boolean: bool, classes: list[Any] | None
) -> ColumnProfile:
    rows = len(values)
    codes, keys = factorize_categories(values, boolean=boolean)
    present = int((codes >= 0).sum())
    tally: dict[str, int] = {}
    for key, count in zip(keys, np.bincount(codes[codes >= 0], minlength=len(keys)).tolist(),
                          strict=True):  # fmt: skip
        tally[key] = tally.get(key, 0) + count
    by_count = sorted(tally.items(), key=lambda pair: (-pair[1], pair[0]))
    if classes is not None:
        by_count = [(key, tally.get(key, 0)) for key in factorize_categories(classes)[1]]
    listed = by_count[:MAX_CATEGORIES]
    other = sum(count for _, count in by_count[MAX_CATEGORIES:])
    return ColumnProfile(
        kind="categorical",
        missing_share=_share(rows - present, rows),
        shares=(*(_share(count, present) for _, count in listed), _share(other, present)),
        categories=tuple(key for key, _ in listed),
        complete=len(by_count) <= MAX_CATEGORIES,
        boolean=boolean,
    )


def factorize_categories(values: Any, *, boolean: bool = False) -> tuple[np.ndarray, list[str]]:
    """Each value's position among the distinct keys found (-1 where missing), and the keys:
    the text a category is known by, 3.0 as '3' (as a category read from text would be), a
    truth value 'true' or 'false' in any spelling. Two values may share a key."""
    import pandas as pd

    # pandas hashes the values in C: measured, six times faster than numpy's sort-based
    # unique on text, which keeps the drift check of a streamed file cheap.
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    keys = [_key(value) for value in np.asarray(uniques, dtype=object).tolist()]
    if boolean:
        keys = [_TRUTH.get(key.strip().lower(), key) for key in keys]
    return codes, keys


def missing_mask(values: np.ndarray) -> np.ndarray:
    """Which values are missing: None, NaN (and NaT), in any array."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "iub":
        return np.zeros(len(values), dtype=bool)
    if values.dtype.kind in "US":
        return np.zeros(len(values), dtype=bool)
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


def as_numbers(values: np.ndarray) -> np.ndarray:
    """The values as float64, NaN where missing or not a number."""
    if values.dtype.kind in "iufb":
        return values.astype(np.float64)
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        return np.array([_float_or_nan(value) for value in values.tolist()], dtype=np.float64)


def text_lengths(values: np.ndarray) -> np.ndarray:
    """Each text's length in characters, NaN for an empty or missing one."""
    texts = np.asarray(values, dtype=object).tolist()
    try:
        # map(len) runs in C: measured, several times faster than a loop over the texts.
        lengths = np.fromiter(map(len, texts), dtype=np.float64, count=len(texts))
    except TypeError:  # a missing text, or a number from a typed file
        lengths = np.array([_length(text) for text in texts], dtype=np.float64)
    lengths[lengths == 0] = np.nan
    return lengths


def _length(text: Any) -> int:
    if isinstance(text, str):
        return len(text)
    return 0 if text is None or text != text else len(str(text))


def _key(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


def _float_or_nan(value: Any) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _share(count: int, total: int) -> float:
    return round(count / total, 6) if total else 0.0


def _number(value: Any) -> float:
    """A bin edge or bound, rounded so that the profile stays short: 7 significant digits."""
    number = float(value)
    return float(f"{number:.7g}")


def _short(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
