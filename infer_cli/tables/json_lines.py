"""Reading JSON Lines in chunks: one object per line, its keys the columns.

The input is cut into blocks of whole lines, and pyarrow parses each block. Values arrive as
the text they were written as, as CSV's do (`2.50` as "2.5", `true` as "true"), so that a
column whose first rows hold whole numbers and later ones decimals, or numbers and then
strings, reads the same in every block. The columns are the keys of the first block's
objects, in the order they first appear; a key first seen later is an error naming its line.
A block pyarrow refuses is read again line by line, so that the error, or the rows set
aside, name the line of each bad record.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from .readers import (
    MAX_BLOCK_BYTES,
    MIN_BLOCK_BYTES,
    Chunk,
    MalformedRow,
    MalformedRows,
    TableReader,
    check_width,
    chunks_of,
    file_size,
)

if TYPE_CHECKING:
    import pyarrow as pa

_Parsed = tuple["pa.Table", list[MalformedRow], np.ndarray, int]

FIRST_BLOCK_BYTES = 256 * 1024
BOM = b"\xef\xbb\xbf"
WHITE_SPACE = np.frombuffer(b" \t\r\n", dtype=np.uint8)
# A line longer than this is not one record of a table.
MAX_LINE_BYTES = 64 * 1024 * 1024


class _Lines:
    """The line of each row of a parsed block, as `Chunk.line_of` looks them up."""

    def __init__(self, lines: np.ndarray) -> None:
        self._lines = lines

    def record_lines(self) -> np.ndarray:
        return self._lines


class JsonLinesReader(TableReader):
    text_columns = True

    def __init__(
        self,
        stream: IO[bytes],
        raw: IO[bytes],
        source: str,
        batch_size: int,
        malformed: MalformedRows,
        max_columns: int,
    ) -> None:
        import pyarrow as pa

        self.source = source
        self._raw = raw
        self._stream = stream
        self._batch_size = batch_size
        self._collect = malformed == "collect"
        self.size = file_size(raw)
        self._bytes_read = 0
        self._pending = b""
        self._eof = False
        self._next_line = 1
        self._block_size = FIRST_BLOCK_BYTES
        self.columns: list[str] = []
        try:
            self._first = self._next_block()
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{source}: cannot read ({exc})") from exc
        if self._first is None:
            raise DataError(f"{source}: the file is empty (expected one JSON object per line)")
        self._first_parsed = self._parse(*self._first, learn=True)
        check_width(len(self.columns), max_columns, source)
        self.schema = pa.schema([(name, pa.string()) for name in self.columns])

    @property
    def bytes_read(self) -> int:
        return self._raw.tell() if self._raw.seekable() else self._bytes_read

    def __iter__(self) -> Iterator[Chunk]:
        first_row = 0
        parsed: _Parsed | None = self._first_parsed
        try:
            while parsed is not None:
                table, malformed, lines, size = parsed
                if table.num_rows:
                    per_row = size / (table.num_rows + len(malformed))
                    wanted = int(per_row * self._batch_size * 0.95)
                    self._block_size = min(max(wanted, MIN_BLOCK_BYTES), MAX_BLOCK_BYTES)
                numbered = _Lines(lines)
                records = np.arange(table.num_rows)
                yield from chunks_of(
                    table, first_row, malformed, numbered, records, self._batch_size
                )
                first_row += table.num_rows + len(malformed)
                block = self._next_block()
                parsed = None if block is None else self._parse(*block, learn=False)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{self.source}: cannot read ({exc})") from exc

    def _next_block(self) -> tuple[bytes, int] | None:
        """The next block of whole lines and the number of its first line; None at the end."""
        buffer = self._pending
        while True:
            if not self._eof and len(buffer) < self._block_size:
                buffer += self._read(self._block_size - len(buffer))
            if self._eof:
                end = len(buffer)
                break
            end = buffer.rfind(b"\n") + 1
            if end > 0:
                break
            if len(buffer) > MAX_LINE_BYTES:
                raise DataError(
                    f"{self.source}, line {self._next_line}: a line longer than "
                    f"{MAX_LINE_BYTES // 2**20} MiB"
                )
            buffer += self._read(max(self._block_size, len(buffer)))
        self._pending = buffer[end:]
        data = buffer[:end]
        first_line = self._next_line
        self._next_line += data.count(b"\n")
        if not data.strip():
            return None if self._eof and not self._pending else self._next_block()
        return data, first_line

    def _read(self, size: int) -> bytes:
        data = self._stream.read(size)
        if not data:
            self._eof = True
            return b""
        if self._bytes_read == 0:
            data = data.removeprefix(BOM)
        self._bytes_read += len(data)
        return data

    def _parse(
        self, data: bytes, first_line: int, *, learn: bool
    ) -> tuple[pa.Table, list[MalformedRow], np.ndarray, int]:
        """A block as a table of text columns, its bad lines, and the line of each row."""
        lines = _record_lines(data, first_line)
        table = _parse_fast(data, len(lines))
        if table is None:
            return self._parse_slowly(data, first_line, learn=learn)
        if learn:
            self.columns = [str(name) for name in table.column_names]
        self._check_keys(table.column_names, lambda name: _first_line_of(table, name, lines))
        return _as_text(table, self.columns), [], lines, len(data)

    def _parse_slowly(
        self, data: bytes, first_line: int, *, learn: bool
    ) -> tuple[pa.Table, list[MalformedRow], np.ndarray, int]:
        """Line by line with Python's json: slower, but it names each bad line."""
        import pyarrow as pa

        records: list[dict[str, str | None]] = []
        lines: list[int] = []
        malformed: list[MalformedRow] = []
        for offset, raw in enumerate(data.split(b"\n")):
            if not raw.strip():
                continue
            line = first_line + offset
            try:
                record = _record(raw)
            except ValueError as bad:
                if not self._collect:
                    raise DataError(f"{self.source}, line {line}: {bad}") from None
                malformed.append(MalformedRow(line, f"{bad}: {_show(raw)}"))
                continue
            if learn:
                self.columns.extend(name for name in record if name not in self.columns)
            records.append(record)
            lines.append(line)
        for record, line in zip(records, lines, strict=True):
            self._check_keys(list(record), lambda _, at=line: at)
        columns = {name: [record.get(name) for record in records] for name in self.columns}
        table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
        return table, malformed, np.array(lines, dtype=np.int64), len(data)

    def _check_keys(self, names: list[str], line_of: Any) -> None:
        known = set(self.columns)
        for name in names:
            if name not in known:
                raise DataError(
                    f"{self.source}, line {line_of(name)}: key '{name}' is not one of the "
                    f"columns, the keys of the first lines ({', '.join(self.columns)})"
                )

    def close(self) -> None:
        import sys

        if self._raw is not sys.stdin.buffer:
            self._stream.close()
            self._raw.close()


def _parse_fast(data: bytes, records: int) -> pa.Table | None:
    """The block parsed by pyarrow, every value as text; None when pyarrow cannot read it
    as one flat object per line (then it is read line by line)."""
    import pyarrow as pa
    import pyarrow.json as pj

    try:
        table = pj.read_json(pa.py_buffer(data))
        dates = [field.name for field in table.schema if pa.types.is_temporal(field.type)]
        if dates:
            # pyarrow reads ISO dates as timestamps: read those columns as the text they are.
            schema = pa.schema([(name, pa.string()) for name in dates])
            options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
            table = pj.read_json(pa.py_buffer(data), parse_options=options)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    nested = any(pa.types.is_nested(field.type) for field in table.schema)
    if nested or table.num_rows != records:
        return None
    return table


def _as_text(table: pa.Table, columns: list[str]) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for name in columns:
        if name not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, pa.string()))
            continue
        column = table[name]
        if pa.types.is_boolean(column.type):
            column = pc.if_else(column, "true", "false")
        elif pa.types.is_floating(column.type):
            column = _floats_as_text(column)
        arrays.append(pc.cast(column, pa.string()))
    return pa.table(arrays, names=columns)


def _floats_as_text(column: pa.ChunkedArray) -> Any:
    """Floats as JSON writes them: NaN as NaN (a missing value to the model), the others as
    their shortest text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(column, pa.string())
    return pc.if_else(pc.is_nan(column), "NaN", text)


def _first_line_of(table: pa.Table, name: str, lines: np.ndarray) -> int:
    import pyarrow.compute as pc

    present = pc.is_valid(table[name]).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(present)
    return int(lines[rows[0]]) if len(rows) else int(lines[0])


def _record(raw: bytes) -> dict[str, str | None]:
    """One line as a record of text values; ValueError says why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as bad:
        raise ValueError(f"not JSON ({bad.msg}, column {bad.colno})") from None
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {_kind(value)}, not an object")
    record: dict[str, str | None] = {}
    for key, item in value.items():
        if isinstance(item, (dict, list)):
            raise ValueError(f"key '{key}' holds a JSON {_kind(item)}, not a value")
        record[key] = _text(item)
    return record


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number"
    )


def _record_lines(data: bytes, first_line: int) -> np.ndarray:
    """The number of each line of `data` that holds something (blank lines hold no record)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(raw == ord("\n"))
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(raw)]))
    # Bytes other than white space before each position: a line holds some when they differ.
    visible = np.concatenate(([0], np.cumsum(~np.isin(raw, WHITE_SPACE))))
    filled = visible[ends] > visible[starts]
    return first_line + np.flatnonzero(filled).astype(np.int64)


def _show(text: bytes) -> str:
    shown = text.decode("utf-8", errors="replace")
    return repr(shown if len(shown) <= 200 else shown[:197] + "...")
