"""Columns of few distinct values given as codes into those values, and the distinct rows of
several such columns.

A category column read from a file holds a handful of values many times; arrow's dictionary
encoding already knows which cell holds which. `Coded` keeps that knowledge beside the column,
so that what depends on a cell's value alone (casting it, coding it against a training
profile, a row-wise transformer) is done once per distinct value or distinct row and then
taken for every row, rather than hashing a Python object per cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ROWS_PER_DISTINCT = 4
"""Distinct rows are worth finding when each stands for several rows."""
_COMBINATIONS = 1 << 16
"""Combinations of values counted in any case (a counter each)."""


@dataclass(frozen=True)
class Coded:
    """A column as `distinct[codes]`: `codes` integers, `distinct` an array of objects."""

    codes: np.ndarray
    distinct: np.ndarray

    def values(self) -> np.ndarray:
        return self.distinct[self.codes]


def code_objects(values: np.ndarray) -> Coded | None:
    """An array of objects as codes into its distinct values, each value kept as it is (two
    values are one only when of the same type and equal: 1 and 1.0, 0.0 and -0.0 stay
    apart); None for an unhashable value."""
    table: dict[Any, int] = {}
    distinct: list[Any] = []
    codes = np.empty(len(values), dtype=np.intp)
    try:
        for row, value in enumerate(values.tolist()):
            key = (float, value.hex()) if type(value) is float else (type(value), value)
            code = table.get(key)
            if code is None:
                code = table[key] = len(distinct)
                distinct.append(value)
            codes[row] = code
    except TypeError:
        return None
    kept = np.empty(len(distinct), dtype=object)
    kept[:] = distinct
    return Coded(codes, kept)


def distinct_rows(
    columns: Sequence[Coded], rows: int, rows_per_distinct: int = ROWS_PER_DISTINCT
) -> tuple[np.ndarray, np.ndarray] | None:
    """The distinct rows of `columns` taken together, as a matrix of objects, and where each
    of the `rows` rows is among them; None when there are more than one per
    `rows_per_distinct` rows, or too many combinations of values to count."""
    sizes = [len(column.distinct) for column in columns]
    combinations = 1
    for size in sizes:
        combinations *= max(size, 1)
    if not rows or combinations > max(rows_per_distinct * rows, _COMBINATIONS):
        return None
    key = np.zeros(rows, dtype=np.int64)
    for column, size in zip(columns, sizes, strict=True):
        key *= size
        key += column.codes
    present = np.flatnonzero(np.bincount(key, minlength=combinations))
    if len(present) * rows_per_distinct > rows:
        return None
    position = np.zeros(combinations, dtype=np.intp)
    position[present] = np.arange(len(present))
    matrix = np.empty((len(present), len(columns)), dtype=object)
    rest = present.copy()
    for index in range(len(columns) - 1, -1, -1):
        rest, code = np.divmod(rest, sizes[index])
        matrix[:, index] = columns[index].distinct[code]
    return matrix, position[key]
