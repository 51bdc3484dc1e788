"""Request bodies as rows: JSON documents (refusing what no column can hold), the input
shapes of MLflow's `/invocations` and of V2 tensors, and CSV and Parquet tables.

Every path ends in a `Payload` whose cells hold one plain value each, so nothing a client
sends reaches pandas or a model in a shape they fail on with anything but a `DataError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DataError, first_line

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

Columns = dict[str, list[Any]]
SCALARS = (str, int, float, bool, type(None))
"""What a cell may hold: anything else (a list, an object) is not one value."""


@dataclass(frozen=True)
class Payload:
    """The rows of one request: named columns of equal length, or a DataFrame."""

    columns: Columns | None = None
    frame: pd.DataFrame | None = None
    rows: int = 0


# Digits as zeros and `+` dropped: a number that may lie beyond a double (309 digits, or an
# exponent of three) shows as a run of zeros or as "e000", found at memchr speed; only then
# is every number checked, which halves the parser's speed.
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789E", b"000000000e")
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def load_json(body: bytes) -> Any:
    """The JSON document of a body, refusing what no column can hold: numbers beyond a
    double, Infinity, lone surrogates (which pandas and Arrow cannot encode)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"the request body is not UTF-8 text (byte {exc.start})") from exc
    digits = body.translate(_DIGITS_AS_ZEROS, b"+")
    checked = b"0" * 309 in digits or b"e000" in digits
    try:
        if checked:
            document = json.loads(
                text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_constant
            )
        else:
            document = json.loads(text, parse_constant=_constant)
    except RecursionError as exc:
        raise DataError("the JSON is nested too deeply") from exc
    except ValueError as exc:
        raise DataError(f"malformed JSON: {first_line(exc)}") from exc
    if _MAYBE_SURROGATE.search(body):
        _refuse_lone_surrogates(document)
    return document


def _parse_int(text: str) -> int:
    value = int(text)
    if len(text) > 308:
        try:
            float(value)
        except OverflowError:
            raise DataError(
                f"the request holds an integer of {len(text)} digits, beyond any column's range"
            ) from None
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise DataError("the request holds a number beyond a double's range (about 1.8e308)")
    return value


def _constant(name: str) -> float:
    if name == "NaN":
        return math.nan  # a missing value, as null is
    raise DataError(f"the request holds {name}: numbers must be finite")


def _refuse_lone_surrogates(document: Any) -> None:
    """A \\uD800-\\uDFFF escape that is not half of a pair decodes to a string that no
    UTF-8 encoder takes."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError as exc:
                    code = ord(item[exc.start])
                    raise DataError(
                        f"the request holds a lone surrogate (\\u{code:04x}), which is not a "
                        "character"
                    ) from None
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())


def from_split(value: Any, names: Sequence[str]) -> Payload:
    if not isinstance(value, dict):
        raise DataError("'dataframe_split' must be an object with 'columns' and 'data'")
    data = value.get("data")
    if not isinstance(data, list):
        raise DataError("'dataframe_split' needs 'data': a list of rows")
    columns = value.get("columns")
    if columns is None:
        return _from_rows(data, names, "dataframe_split")
    if not isinstance(columns, list) or not all(
        isinstance(name, str) or (isinstance(name, (int, float)) and not isinstance(name, bool))
        for name in columns
    ):
        raise DataError("'dataframe_split': 'columns' must be a list of names")
    return _from_rows(data, [str(name) for name in columns], "dataframe_split")


def _from_rows(data: list[Any], columns: Sequence[str], key: str) -> Payload:
    """Row-major values under known column names; a row must hold one value per column."""
    width = len(columns)
    if len(set(columns)) != width:
        raise DataError(f"'{key}': column '{_duplicate(columns)}' appears twice")
    for position, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else "not a list"
            raise DataError(f"'{key}': row {position + 1} has {got}, expected {width}")
    if len(data) == 1:
        return Payload(
            {name: [value] for name, value in zip(columns, data[0], strict=True)}, rows=1
        )
    transposed = zip(*data, strict=True) if data else ([] for _ in columns)
    return Payload(
        {name: list(values) for name, values in zip(columns, transposed, strict=True)},
        rows=len(data),
    )


def _duplicate(names: Sequence[str]) -> str:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    raise ValueError("no duplicate")


def from_records(records: list[Any], key: str) -> Payload:
    names: dict[str, None] = {}
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(f"'{key}': row {position + 1} is not an object")
        names.update(dict.fromkeys(record))
    columns = {name: [record.get(name) for record in records] for name in names}
    return Payload(columns, rows=len(records))


def from_instances(value: Any, key: str, names: Sequence[str]) -> Payload:
    """TF-serving style input: records, a dict of columns, or rows in the model's order."""
    if isinstance(value, dict):
        columns: Columns = {}
        for name, values in value.items():
            columns[str(name)] = values if isinstance(values, list) else [values]
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise DataError(f"'{key}': the columns have different lengths")
        return Payload(columns, rows=lengths.pop() if lengths else 0)
    if not isinstance(value, list):
        raise DataError(f"'{key}' must be a list of rows or an object of columns")
    if not value or isinstance(value[0], dict):
        return from_records(value, key)
    if isinstance(value[0], list):
        return _from_rows(value, names, key)
    if len(names) == 1:
        return Payload({names[0]: value}, rows=len(value))
    raise DataError(
        f"'{key}' holds bare values, but the model takes {len(names)} columns: "
        "send rows as lists or objects"
    )


def from_tensors(tensors: list[Any], names: Sequence[str]) -> Payload:
    """V2 input tensors: one row-major 2-D tensor, or one 1-D tensor per column."""
    if len(tensors) == 1 and len(_shape(tensors[0])) == 2:
        return _from_matrix(tensors[0], names)
    return _from_column_tensors(tensors)


def _shape(tensor: Any) -> list[int]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise DataError("each input tensor must be an object with 'name', 'shape' and 'data'")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape
    ):
        raise DataError(f"input '{tensor['name']}': 'shape' must be a list of sizes")
    return shape


def _flat_data(tensor: dict[str, Any], size: int) -> list[Any]:
    data = tensor.get("data")
    if not isinstance(data, list):
        raise DataError(f"input '{tensor.get('name')}': 'data' must be a list")
    if data and isinstance(data[0], list):
        data = [value for row in data for value in (row if isinstance(row, list) else [row])]
    if len(data) != size:
        raise DataError(
            f"input '{tensor.get('name')}': 'data' holds {len(data)} values, its shape says {size}"
        )
    return data


def _from_matrix(tensor: dict[str, Any], names: Sequence[str]) -> Payload:
    rows, width = _shape(tensor)
    if width != len(names):
        raise DataError(
            f"input '{tensor.get('name')}' has {width} columns; the model takes {len(names)} "
            f"({', '.join(names)})"
        )
    data = _flat_data(tensor, rows * width)
    return Payload({name: data[i::width] for i, name in enumerate(names)}, rows=rows)


def _from_column_tensors(tensors: list[Any]) -> Payload:
    columns: Columns = {}
    for tensor in tensors:
        shape = _shape(tensor)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise DataError(
                f"input '{tensor.get('name')}': send one 2-D tensor of rows, "
                "or one 1-D tensor per column"
            )
        columns[str(tensor.get("name"))] = _flat_data(tensor, shape[0])
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise DataError("the input tensors have different lengths")
    return Payload(columns, rows=lengths.pop())


def check_cells(payload: Payload) -> None:
    """Every cell holds one value: a list or an object in a cell is refused here, before
    pandas or a model meets it (and before anything recurses into it)."""
    for name, values in (payload.columns or {}).items():
        if not set(map(type, values)).issubset(SCALARS):
            position, value = next(
                (position, value)
                for position, value in enumerate(values)
                if type(value) not in SCALARS
            )
            kind = "a list" if isinstance(value, list) else "an object"
            raise DataError(
                f"row {position + 1}, column '{name}': {kind} is not one value "
                "(send one number, string, boolean or null per cell)"
            )


def read_csv(body: bytes) -> Payload:
    """A CSV body with a header row."""
    import pyarrow as pa
    from pyarrow import csv

    if not body.strip():
        raise DataError("the CSV body is empty (expected a header row)")
    try:
        table = csv.read_csv(pa.BufferReader(body))
    except pa.ArrowInvalid as exc:
        raise DataError(f"malformed CSV: {_without_row_text(str(exc))}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"the CSV body is not UTF-8 text (byte {exc.start})") from exc
    return _frame_payload(table)


def read_parquet(body: bytes) -> Payload:
    """A Parquet body."""
    import pyarrow as pa
    from pyarrow import parquet

    try:
        table = parquet.read_table(pa.BufferReader(body))
    except (pa.ArrowException, OSError) as exc:
        reason = first_line(exc).replace(" '<Buffer>'", "")
        raise DataError(f"not a readable Parquet body ({reason})") from exc
    return _frame_payload(table)


def _frame_payload(table: pa.Table) -> Payload:
    """A table as the frame the model core takes: one column per name, one value per cell,
    text as UTF-8 strings."""
    import pyarrow as pa

    names = [str(name) for name in table.column_names]
    if len(set(names)) != len(names):
        raise DataError(f"column '{_duplicate(names)}' appears twice")
    for position, column in enumerate(table.schema):
        kind = column.type
        cell = kind.value_type if pa.types.is_dictionary(kind) else kind
        if pa.types.is_nested(cell):
            raise DataError(f"column '{column.name}' holds {kind} values: send one value per cell")
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            try:
                table = table.set_column(
                    position, column.name, table.column(position).cast(pa.string())
                )
            except pa.ArrowInvalid as exc:
                raise DataError(
                    f"column '{column.name}' holds bytes that are not UTF-8 text"
                ) from exc
    frame = table.to_pandas()
    return Payload(frame=frame, rows=len(frame))


def _without_row_text(message: str) -> str:
    # Arrow appends the offending line ("Expected 4 columns, got 5: 1,2,3,4,5"); a client's
    # own data is not repeated back to it.
    first = message.strip().splitlines()[0] if message.strip() else "unreadable"
    head, _, _ = first.partition(": ")
    reason = first[len(head) + 2 :] if head.startswith("CSV parse error") else first
    return reason.split(": ", 1)[0]
