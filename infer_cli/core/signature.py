"""A model's input signature, and the validation that turns raw rows into what the model takes.

Validation runs before every prediction, in every command, so a bad value is reported with
its column and row instead of surfacing as an error deep inside scikit-learn.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import SchemaError
from .cells import cast_boolean, is_missing, show
from .coded import Coded

ColumnType = Literal["float", "integer", "string", "text", "boolean", "any"]
COLUMN_TYPES: tuple[str, ...] = ("float", "integer", "string", "text", "boolean", "any")
PINNED_DTYPES = ("float64", "float32", "int64", "int32")
NUMERIC_TYPES = ("float", "integer")
_PLAIN_NUMBER_TYPES = {float, int, type(None)}
_EXACT_IN_A_DOUBLE = 2**53


@dataclass(frozen=True)
class Column:
    """One input column: its name, the type it is cast to, and whether it must be present.

    `numpy_dtype` pins the dtype the model receives, where the model's own signature says
    (MLflow hands a `long` column over as int64, a `float` one as float32); numbers are
    float64 otherwise.
    """

    name: str
    dtype: ColumnType
    required: bool = True
    numpy_dtype: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.dtype, "required": self.required}
        if self.numpy_dtype:
            data["numpy_dtype"] = self.numpy_dtype
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Column:
        dtype = data.get("type", "any")
        if dtype not in COLUMN_TYPES:
            raise ValueError(f"unknown column type {dtype!r}")
        numpy_dtype = data.get("numpy_dtype")
        if numpy_dtype is not None and numpy_dtype not in PINNED_DTYPES:
            raise ValueError(f"unknown numpy dtype {numpy_dtype!r}")
        return cls(
            name=str(data["name"]),
            dtype=dtype,
            required=bool(data.get("required", True)),
            numpy_dtype=numpy_dtype,
        )


@dataclass(frozen=True)
class BadRow:
    """A row `validate` refuses: its position in the frame, and its first refused value."""

    row: int
    column: str | None
    reason: str


@dataclass(frozen=True)
class Validated:
    """Rows ready for the model, and notices worth telling the user once."""

    frame: pd.DataFrame
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Signature:
    """The ordered input columns a model takes, and the columns it passes through untouched.

    `positional` marks a model that knows only how many columns it takes (a bare estimator
    fitted on an array): its inputs are the first columns of the data, in order.
    """

    inputs: tuple[Column, ...]
    passthrough: tuple[str, ...] = ()
    positional: bool = False

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.inputs]

    @property
    def text_columns(self) -> list[str]:
        return [column.name for column in self.inputs if column.dtype == "text"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [column.to_dict() for column in self.inputs],
            "passthrough": list(self.passthrough),
            "positional": self.positional,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        return cls(
            inputs=tuple(Column.from_dict(item) for item in data["inputs"]),
            passthrough=tuple(str(name) for name in data.get("passthrough", ())),
            positional=bool(data.get("positional", False)),
        )

    def validate(self, frame: pd.DataFrame, *, first_row: int = 0) -> Validated:
        """Check `frame` against the signature and return the columns the model takes, cast.

        `first_row` is the position of the frame's first row in its source, so that errors
        in a chunk of a stream name the row of the whole stream.
        """
        if self.positional:
            return self._validate_positional(frame)
        present = {str(name) for name in frame.columns}
        missing = [c.name for c in self.inputs if c.required and c.name not in present]
        if missing:
            expected = ", ".join(self.names)
            error = SchemaError(f"missing column '{missing[0]}' (model expects: {expected})")
            error.column = missing[0]
            raise error
        known = set(self.names) | set(self.passthrough)
        extra = [str(name) for name in frame.columns if str(name) not in known]
        notices = []
        if extra:
            # A wide table would make this one note thousands of names long.
            shown = ", ".join(extra[:20]) + (f" and {len(extra) - 20:,} more" * (len(extra) > 20))
            notices.append(f"ignoring {len(extra):,} column(s) the model does not use: {shown}")
        cast: dict[str, Any] = {}
        for column in self.inputs:
            if column.name in present:
                values = _cast(frame[column.name], column, first_row)
                cast[column.name] = _pin(values, column, first_row)
            else:
                cast[column.name] = _absent(column, len(frame))
        return Validated(pd.DataFrame(cast, index=frame.index), notices)

    def arrays(
        self, columns: Mapping[str, Sequence[Any]], rows: int
    ) -> dict[str, np.ndarray] | None:
        """Rows given as named columns of plain values (decoded JSON), as the arrays `validate`
        would give each column, where no casting needs pandas: every input present, numbers
        as numbers (or None) in numeric columns, strings (or None) in string and text columns,
        true/false in boolean ones, and in untyped columns values pandas reads one way only.

        Anything else returns None, and the caller takes `validate`, which casts and reports.
        """
        if self.positional or not self.inputs:
            return None
        arrays = {}
        for column in self.inputs:
            values = columns.get(column.name)
            if values is None or len(values) != rows:
                return None
            array = _plain_array(values, column)
            if array is None:
                return None
            arrays[column.name] = array
        return arrays

    def cast_arrays(
        self,
        columns: Mapping[str, np.ndarray],
        rows: int,
        coded: dict[str, Coded] | None = None,
    ) -> dict[str, np.ndarray] | None:
        """Columns read from a file as arrays (float64 where the text read as numbers, else
        objects: strings, None where missing) cast as `validate` casts the DataFrame made of
        them, without making it. None wherever that casting takes pandas or finds a value to
        refuse: the caller then takes `validate`, which casts and reports.

        `coded`: columns of objects also given as codes into their distinct values; each is
        cast by casting its distinct values, and replaced in `coded` by the cast codes.
        """
        if self.positional or not self.inputs:
            return None
        cast = {}
        for column in self.inputs:
            values = columns.get(column.name)
            if values is None:
                if column.required:
                    return None
                cast[column.name] = _absent(column, rows)
                continue
            array = None
            if len(values) != rows:
                pass
            elif coded is not None and column.name in coded and values.dtype == object:
                given = coded.pop(column.name)
                distinct = _read_array(given.distinct, column)
                if distinct is not None:
                    coded[column.name] = Coded(given.codes, distinct)
                    array = distinct[given.codes]
            else:
                array = _read_array(values, column)
            if array is None:
                return None
            cast[column.name] = array
        return cast

    def bad_rows(self, frame: pd.DataFrame) -> list[BadRow]:
        """Every row `validate` would refuse, each once with its first refused value, in order.

        `validate` stops at the first bad value; this finds them all, so that a caller can
        set the bad rows aside and score the others. A frame-wide problem (a missing column)
        is raised as `validate` raises it.
        """
        found: dict[int, BadRow] = {}
        if not self.positional:
            for column in self.inputs:
                if column.dtype in NUMERIC_TYPES and column.name in frame.columns:
                    series = frame[column.name]
                    for refused, reason in _read_numbers(series, column)[1]:
                        for position in np.flatnonzero(refused).tolist():
                            value = show(series.iloc[position])
                            found.setdefault(
                                position, BadRow(position, column.name, f"{value} {reason}")
                            )
        # Other refusals (each type's own casting rules) are found one validation at a time.
        while True:
            kept = np.setdiff1d(np.arange(len(frame)), np.fromiter(found, dtype=np.int64))
            try:
                self.validate(frame.iloc[kept])
                break
            except SchemaError as error:
                if error.row is None:
                    raise
                position = int(kept[error.row])
                found[position] = BadRow(position, error.column, error.reason)
        return [found[position] for position in sorted(found)]

    def _validate_positional(self, frame: pd.DataFrame) -> Validated:
        wanted = len(self.inputs)
        if frame.shape[1] < wanted:
            raise SchemaError(f"the model takes {wanted} columns; the data has {frame.shape[1]}")
        notices = []
        if frame.shape[1] > wanted:
            notices.append(f"using the first {wanted} of {frame.shape[1]} columns")
        return Validated(frame.iloc[:, :wanted], notices)


def _plain_array(values: Sequence[Any], column: Column) -> np.ndarray | None:
    kinds = set(map(type, values))
    if column.numpy_dtype is not None and column.dtype not in NUMERIC_TYPES:
        return None
    if column.dtype in NUMERIC_TYPES:
        # bool is an int subclass; it and numeric strings take the casting path.
        if not kinds <= _PLAIN_NUMBER_TYPES:
            return None
        if (
            kinds == {int}
            and column.numpy_dtype
            and np.dtype(column.numpy_dtype).kind in "iu"
            and -_EXACT_IN_A_DOUBLE <= min(values) <= max(values) <= _EXACT_IN_A_DOUBLE
        ):
            # Whole numbers for an integer column (MLflow's `long`), cast at once; as
            # `validate` gives them, which reads them as doubles first.
            try:
                return np.array(values, dtype=column.numpy_dtype)
            except OverflowError:
                return None  # `validate` names the row
        numbers = np.array(values, dtype=np.float64)
        if (
            column.dtype == "integer"
            and float in kinds  # whole numbers sent as ints need no look
            and (~np.isnan(numbers) & (numbers != np.floor(numbers))).any()
        ):
            return None
        if column.numpy_dtype in (None, "float64"):
            return numbers
        target = np.dtype(column.numpy_dtype)
        if target.kind in "iu":
            limits = np.iinfo(target)
            if (
                np.isnan(numbers).any()
                or (numbers < limits.min).any()
                or (numbers > limits.max).any()
            ):
                return None  # `validate` names the row
        return numbers.astype(target)
    if column.dtype in ("string", "text"):
        if not kinds <= {str, type(None)}:
            return None
        missing = "" if column.dtype == "text" else np.nan
        return np.array([missing if value is None else value for value in values], dtype=object)
    if column.dtype == "boolean":
        return np.array(values, dtype=bool) if kinds == {bool} else None
    if column.dtype == "any":
        return _untyped_array(values, kinds)
    return None


def _read_array(values: np.ndarray, column: Column) -> np.ndarray | None:
    """One column of `Signature.cast_arrays`, as `_cast` and `_pin` give it; None as there."""
    if values.dtype == np.float64:
        if column.dtype == "any":
            return values
        if column.dtype not in NUMERIC_TYPES:
            return None
        for refused, _ in _number_problems(values, column):
            if refused.any():
                return None
        try:
            return _pin(values, column, 0)
        except SchemaError:
            return None
    if values.dtype != object or column.numpy_dtype is not None:
        return None
    if column.dtype not in ("string", "text", "any"):
        return None
    listed = values.tolist()
    kinds = set(map(type, listed))
    if not kinds <= {str, type(None)} or (column.dtype == "any" and str not in kinds):
        return None  # pandas keeps an untyped column of gaps alone as objects, with None
    if type(None) not in kinds:
        return values
    # pandas' string dtype, as `validate` meets it, holds NaN for a gap; text is "" there.
    missing = "" if column.dtype == "text" else np.nan
    return np.array([missing if value is None else value for value in listed], dtype=object)


def _untyped_array(values: Sequence[Any], kinds: set[type]) -> np.ndarray | None:
    """An untyped column as pandas makes it of a list: whole numbers as int64, numbers with
    fractions or gaps as float64, strings with gaps as objects with pandas' missing value."""
    if kinds == {int}:
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            return None
    if kinds <= _PLAIN_NUMBER_TYPES and kinds & {int, float}:
        return np.array(values, dtype=np.float64)
    if kinds <= {str, type(None)} and str in kinds:
        missing = _pandas_string_missing()
        return np.array([missing if value is None else value for value in values], dtype=object)
    return None


@functools.cache
def _pandas_string_missing() -> Any:
    """What a gap in a column of strings is once scikit-learn has the frame as an array: NaN
    with pandas' string dtype (pandas 3), None with objects (pandas 2)."""
    return np.asarray(pd.DataFrame({"probe": ["text", None]}))[1, 0]


def _absent(column: Column, rows: int) -> Any:
    if column.dtype == "text":
        return np.full(rows, "", dtype=object)
    if column.dtype in NUMERIC_TYPES:
        return np.full(rows, np.nan)
    return np.full(rows, np.nan, dtype=object)


def _cast(series: pd.Series, column: Column, first_row: int) -> Any:
    if column.dtype in NUMERIC_TYPES:
        return _cast_numeric(series, column, first_row)
    if column.dtype == "string":
        return _cast_category(series)
    if column.dtype == "boolean":
        return cast_boolean(series, column.name, first_row)
    if column.dtype == "text":
        return series.astype(object).where(series.notna(), "").astype(str).to_numpy(dtype=object)
    return series


def _cast_numeric(series: pd.Series, column: Column, first_row: int) -> np.ndarray:
    values, problems = _read_numbers(series, column)
    found = [(int(np.argmax(refused)), reason) for refused, reason in problems if refused.any()]
    if found:
        position, reason = min(found)
        raise SchemaError(
            f"{show(series.iloc[position])} {reason}", column=column.name, row=first_row + position
        )
    return values


def _read_numbers(
    series: pd.Series, column: Column
) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """The column as floats, and a mask of refused values for each reason to refuse one."""
    problems: list[tuple[np.ndarray, str]] = []
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = series.astype(object)
        blank = text.isna() | text.map(lambda value: isinstance(value, str) and not value.strip())
        numbers = pd.to_numeric(text.where(~blank, None), errors="coerce")
        problems.append(((numbers.isna() & ~blank).to_numpy(), "is not a number"))
        values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    return values, problems + _number_problems(values, column)


def _number_problems(values: np.ndarray, column: Column) -> list[tuple[np.ndarray, str]]:
    """Masks of the floats a column of `column`'s type refuses, each with its reason."""
    if column.dtype != "integer":
        return []
    # A missing value turns a whole column of integers into floats: accept 3.0, refuse 3.5.
    infinite = np.isinf(values)
    with np.errstate(invalid="ignore"):
        fraction = ~np.isnan(values) & ~infinite & (values != np.floor(values))
    beyond = ~fraction & ((values < -(2.0**63)) | (values >= 2.0**63)) & ~infinite
    return [
        (infinite, "is not a finite number"),
        (fraction, "is not a whole number"),
        # No whole-number column (int64 at most) holds these.
        (beyond, "is too large for a whole number"),
    ]


def _cast_category(series: pd.Series) -> np.ndarray:
    values = series.to_numpy(dtype=object, na_value=np.nan)
    if pd.api.types.is_float_dtype(series):
        # Categories read as numbers must match how they were seen in training: 3, not 3.0.
        return np.array(
            [_category_of_float(value) for value in values],
            dtype=object,
        )
    if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
        return np.array(
            [
                value if isinstance(value, str) or is_missing(value) else str(value)
                for value in values
            ],
            dtype=object,
        )
    return np.array([np.nan if is_missing(v) else str(v) for v in values], dtype=object)


def _category_of_float(value: Any) -> Any:
    if is_missing(value):
        return np.nan
    return str(int(value)) if float(value).is_integer() else str(value)


def _pin(values: Any, column: Column, first_row: int) -> Any:
    """Values cast to the column's pinned dtype; whole numbers have no place for a gap."""
    if column.numpy_dtype is None:
        return values
    target = np.dtype(column.numpy_dtype)
    if target.kind in "iu":  # unsigned too: numpy's cast would wrap -5 round to 251
        numbers = np.asarray(values, dtype=np.float64)
        gaps = np.isnan(numbers)
        if gaps.any():
            raise SchemaError(
                "missing value (the model takes whole numbers here, with no gaps)",
                column=column.name,
                row=first_row + int(np.flatnonzero(gaps)[0]),
            )
        limits = np.iinfo(target)
        # In floats, int64's largest value rounds up to 2**63, one past it: compare with that.
        outside = (numbers < limits.min) | (numbers >= limits.max + 1)
        if outside.any():
            position = int(np.flatnonzero(outside)[0])
            value = numbers[position]
            # An infinity has no int(): shown as the float it is.
            shown = show(int(value)) if np.isfinite(value) else str(value)
            size = "large" if value > limits.max else "small"
            raise SchemaError(
                f"{shown} is too {size} for the model's {target} column",
                column=column.name,
                row=first_row + position,
            )
    return np.asarray(values).astype(target)
