"""Request bodies as rows: JSON documents (refusing what no column can hold), the input
shapes of MLflow's `/invocations`, and CSV and Parquet tables (V2 tensors: `tensors`).

Every path ends in a `Payload` whose cells hold one plain value each, so nothing a client
sends reaches pandas or a model in a shape they fail on with anything but a `DataError`.
"""

from __future__ import annotations

import csv as csv_module
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

from ..errors import DataError, first_line
from .errors import PayloadTooLarge

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

Columns = dict[str, list[Any]]
SCALARS = frozenset((str, int, float, bool, type(None)))
"""What a cell may hold: anything else (a list, an object) is not one value."""


@dataclass(frozen=True)
class Payload:
    """The rows of one request: named columns of equal length, rows of values under `names`
    (turned into columns a part at a time, by `part`), or a DataFrame."""

    columns: Columns | None = None
    frame: pd.DataFrame | None = None
    rows: int = 0
    by_row: list[list[Any]] | None = None
    names: Sequence[str] = ()

    @property
    def width(self) -> int:
        if self.frame is not None:
            return int(self.frame.shape[1])
        return len(self.names) if self.by_row is not None else len(self.columns or ())

    def part(self, start: int = 0, stop: int | None = None) -> Payload:
        """Rows `start` to `stop` as named columns (or a frame), each cell checked to hold
        one value: the work a large request's rows cost is done as each part is scored."""
        stop = self.rows if stop is None else min(stop, self.rows)
        if self.frame is not None:
            return Payload(frame=self.frame.iloc[start:stop], rows=stop - start)
        if self.by_row is not None:
            transposed = zip(*self.by_row[start:stop], strict=True)
            columns = dict(zip(self.names, map(list, transposed), strict=True))
            if stop <= start:
                columns = {name: [] for name in self.names}
        else:
            columns = {name: values[start:stop] for name, values in (self.columns or {}).items()}
        _check_cells(columns, start)
        return Payload(columns, rows=stop - start)


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
    checked = _BEYOND_A_DOUBLE in digits or b"e000" in digits
    try:
        document = (_CHECKING_DECODER if checked else _DECODER).decode(text)
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


# Made once: json.loads given any option builds a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_constant)
_CHECKING_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_constant
)
_BEYOND_A_DOUBLE = b"0" * 309


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


@dataclass(frozen=True)
class Limits:
    """How much one request may hold; more is refused (413), from what the body says up
    front (a Parquet footer, a CSV header) where it can, before its rows are decoded."""

    rows: int = 1_000_000
    columns: int = 10_000
    text_bytes: int = 512 * 1024 * 1024
    """Text a Parquet body may expand to once its dictionaries are decoded."""
    every_column: bool = False
    """Keep the columns the model does not take (an id, for the prediction log), up to
    `columns`, where they would otherwise be left out."""

    def check(self, rows: int | None = None, columns: int | None = None) -> None:
        if rows is not None and rows > self.rows:
            raise PayloadTooLarge(
                f"the request holds {rows:,} rows; this server takes at most {self.rows:,} "
                "per request (serve --max-rows)"
            )
        if columns is not None and columns > self.columns:
            raise PayloadTooLarge(
                f"the request has {columns:,} columns; this server takes at most "
                f"{self.columns:,} (serve --max-columns)"
            )


@dataclass(frozen=True)
class Reader:
    """Reads request bodies into payloads for a model that takes `names` (by position, if
    `by_position`), within `limits`.

    Columns the model does not take are left out where a body could make them costly: a
    record's keys and a Parquet file's columns (unless `limits.every_column`)."""

    names: Sequence[str]
    limits: Limits = field(default_factory=Limits)
    by_position: bool = False

    def json(self, body: bytes) -> Any:
        """The JSON document of a body, refused before it is parsed if it holds far more
        arrays and objects than rows are allowed: a row is one of them in every input
        shape, and each costs ten times its two bytes once parsed."""
        containers = body.count(b"[") + body.count(b"{")
        if containers > 2 * self.limits.rows + 1000:
            raise PayloadTooLarge(
                f"the request holds {containers:,} JSON arrays and objects, more than rows may "
                f"be: this server takes at most {self.limits.rows:,} rows per request "
                "(serve --max-rows)"
            )
        return load_json(body)

    def split(self, value: Any, key: str = "dataframe_split") -> Payload:
        """pandas' `orient="split"` document: column names and row-major data (`index`
        ignored); without names, rows in the model's column order."""
        if not isinstance(value, dict):
            raise DataError(f"'{key}' must be an object with 'columns' and 'data'")
        data = value.get("data")
        if not isinstance(data, list):
            raise DataError(f"'{key}' needs 'data': a list of rows")
        columns = value.get("columns")
        if columns is None:
            return self._rows(data, self.names, key)
        if not isinstance(columns, list) or not all(
            isinstance(name, str) or (isinstance(name, (int, float)) and not isinstance(name, bool))
            for name in columns
        ):
            raise DataError(f"'{key}': 'columns' must be a list of names")
        return self._rows(data, [str(name) for name in columns], key)

    def records(self, records: list[Any], key: str) -> Payload:
        """A list of objects, one per row; a key a row lacks is a missing value."""
        self.limits.check(rows=len(records))
        names: dict[str, None] = {}
        for position, record in enumerate(records):
            if not isinstance(record, dict):
                raise DataError(f"'{key}': row {position + 1} is not an object")
            names.update(dict.fromkeys(record))
            # Each new key costs a value in every row: counted as they come.
            self.limits.check(columns=len(names))
        kept = self._kept(list(names))
        columns = {name: [record.get(name) for record in records] for name in kept}
        return Payload(columns, rows=len(records))

    def instances(self, value: Any, key: str) -> Payload:
        """TF-serving style input: records, an object of columns, or rows in the model's order."""
        if isinstance(value, dict):
            self.limits.check(columns=len(value))
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
            return self.records(value, key)
        if isinstance(value[0], list):
            return self._rows(value, self.names, key)
        if len(self.names) == 1:
            return Payload({self.names[0]: value}, rows=len(value))
        raise DataError(
            f"'{key}' holds bare values, but the model takes {len(self.names)} columns: "
            "send rows as lists or objects"
        )

    def csv(self, body: bytes) -> Payload:
        """A CSV body with a header row."""
        import pyarrow as pa
        from pyarrow import csv

        if not body.strip():
            raise DataError("the CSV body is empty (expected a header row)")
        self.limits.check(columns=_header_width(body, self.limits.columns))
        try:
            table = csv.read_csv(pa.BufferReader(body))
        except pa.ArrowInvalid as exc:
            raise DataError(f"malformed CSV: {_without_row_text(str(exc))}") from exc
        except UnicodeDecodeError as exc:
            raise DataError(f"the CSV body is not UTF-8 text (byte {exc.start})") from exc
        self.limits.check(rows=table.num_rows)
        return _frame_payload(table, table.num_rows)

    def parquet(self, body: bytes) -> Payload:
        """A Parquet body, refused from its footer if it holds too much, and read only for
        the columns the model takes: a few kilobytes can encode millions of rows."""
        import pyarrow as pa
        from pyarrow import parquet

        from ..tables import is_text_type  # with the Parquet reader, only for a Parquet body

        try:
            file = parquet.ParquetFile(pa.BufferReader(body))
            metadata = file.metadata
            groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
            self.limits.check(rows=max(metadata.num_rows, sum(groups)))
            present = file.schema_arrow.names
            self.limits.check(columns=len(present))
            kept = self._kept(present)
            text = [
                field.name
                for field in file.schema_arrow
                if field.name in kept and is_text_type(field.type)
            ]
            dictionaries = parquet.ParquetFile(pa.BufferReader(body), read_dictionary=text)
            table = dictionaries.read(columns=kept)
        except (pa.ArrowException, OSError) as exc:
            reason = first_line(exc).replace(" '<Buffer>'", "")
            raise DataError(f"not a readable Parquet body ({reason})") from exc
        self.limits.check(rows=table.num_rows)
        return _frame_payload(_decoded_text(table, self.limits), metadata.num_rows)

    def _rows(self, data: list[Any], columns: Sequence[str], key: str) -> Payload:
        """Row-major values under known column names; a row must hold one value per column."""
        width = len(columns)
        self.limits.check(rows=len(data), columns=width)
        if len(set(columns)) != width:
            raise DataError(f"'{key}': column '{_duplicate(columns)}' appears twice")
        # Checked at C speed; the loop below only finds the row to name.
        if set(map(type, data)) - {list} or set(map(len, data)) - {width}:
            for position, row in enumerate(data):
                if not isinstance(row, list) or len(row) != width:
                    got = f"{len(row)} values" if isinstance(row, list) else "not a list"
                    raise DataError(f"'{key}': row {position + 1} has {got}, expected {width}")
        return Payload(rows=len(data), by_row=data, names=list(columns))

    def _kept(self, present: Sequence[str]) -> list[str]:
        """The columns of `present` the model reads: its own, or its first ones by position."""
        if self.by_position:
            return list(present[: len(self.names)])
        if self.limits.every_column:
            return list(present)
        wanted = set(self.names)
        return [name for name in present if name in wanted]


def _duplicate(names: Sequence[str]) -> str:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    raise ValueError("no duplicate")


def _check_cells(columns: Columns, first_row: int) -> None:
    """Every cell holds one value: a list or an object in a cell is refused here, before
    pandas or a model meets it (and before anything recurses into it)."""
    # One pass over every cell first: most requests are fine, and are a few rows wide.
    if set(map(type, chain.from_iterable(columns.values()))) <= SCALARS:
        return
    for name, values in columns.items():
        if not set(map(type, values)) <= SCALARS:
            position, value = next(
                (position, value)
                for position, value in enumerate(values)
                if type(value) not in SCALARS
            )
            kind = "a list" if isinstance(value, list) else "an object"
            raise DataError(
                f"row {first_row + position + 1}, column '{name}': {kind} is not one value "
                "(send one number, string, boolean or null per cell)"
            )


def _header_width(body: bytes, limit: int) -> int:
    """How many columns a CSV header names, read exactly only when its first line holds more
    commas than `limit` allows (a quoted name may hold a comma, or a line end)."""
    end = body.find(b"\n")
    rough = body.count(b",", 0, len(body) if end < 0 else end) + 1
    if rough <= limit:
        return rough
    lines = io.TextIOWrapper(io.BytesIO(body), encoding="utf-8", errors="replace", newline="")
    try:
        return len(next(csv_module.reader(lines)))
    except (csv_module.Error, StopIteration):
        return rough


def _decoded_text(table: pa.Table, limits: Limits) -> pa.Table:
    """Text columns read as dictionaries, measured as they will be once decoded, then
    decoded: a dictionary lets one long string stand for millions of rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    expanded = 0
    for position, column in enumerate(table.schema):
        if not pa.types.is_dictionary(column.type):
            continue
        chunks = table.column(position).chunks
        for chunk in chunks:
            lengths = pc.binary_length(chunk.dictionary)
            expanded += pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0
        if expanded > limits.text_bytes:
            raise PayloadTooLarge(
                f"the Parquet body's text comes to more than {limits.text_bytes:,} bytes once "
                "decoded (the limit grows with serve --max-body-mb)"
            )
        table = table.set_column(
            position, column.name, table.column(position).cast(column.type.value_type)
        )
    return table


def _frame_payload(table: pa.Table, rows: int) -> Payload:
    """A table as the frame the model core takes: one column per name, one value per cell,
    text as UTF-8 strings. `rows` counts the rows when no column is left to hold them."""
    import pandas as pd
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
    frame = table.to_pandas() if table.num_columns else pd.DataFrame(index=pd.RangeIndex(rows))
    return Payload(frame=frame, rows=len(frame))


def _without_row_text(message: str) -> str:
    # Arrow appends the offending line ("Expected 4 columns, got 5: 1,2,3,4,5"); a client's
    # own data is not repeated back to it.
    first = message.strip().splitlines()[0] if message.strip() else "unreadable"
    head, _, _ = first.partition(": ")
    reason = first[len(head) + 2 :] if head.startswith("CSV parse error") else first
    return reason.split(": ", 1)[0]
