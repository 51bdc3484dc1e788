"""Reading tables streamed in chunks: the CSV reader, what every reader is (Parquet's is
`parquet`'s), and the `Chunk`s they yield, each knowing the row and the line it starts at.

Which reader an input gets, and gzip, are `inputs`' (`open_table`); JSON Lines is
`json_lines`'. A whole table at once (for training) is `whole_table`'s, writing is
`writers`', and files that appear only once complete are `atomic`'s.
"""

from __future__ import annotations

import csv
import os
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from ..errors import DataError, UsageError
from .atomic import STDIO
from .csv_blocks import Block, RecordBlocks
from .limits import MAX_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa

# Bytes read before the size of a row is known; later blocks hold about --batch-size rows.
FIRST_BLOCK_BYTES = 256 * 1024
MIN_BLOCK_BYTES = 64 * 1024
MAX_BLOCK_BYTES = 64 * 1024 * 1024
MalformedRows = Literal["error", "collect"]


def describe(path: str) -> str:
    """How a path is named in messages."""
    return "<stdin>" if path == STDIO else path


def check_delimiter(delimiter: str | None) -> str | None:
    """A one-character field separator; `\\t` and `tab` name the tab; None when not given."""
    if delimiter is None:
        return None
    if delimiter in ("\\t", "tab"):
        return "\t"
    if len(delimiter.encode()) != 1 or delimiter in '"\r\n':
        raise UsageError(
            f"--delimiter must be one ASCII character other than a quote (got {delimiter!r})"
        )
    return delimiter


class RecordLines(Protocol):
    """Where the rows of a parsed block start: the line of each of its records, in order."""

    def record_lines(self) -> np.ndarray: ...


@dataclass(frozen=True)
class MalformedRow:
    """A CSV record that does not split into the header's columns."""

    line: int | None
    reason: str


@dataclass
class Chunk:
    """Consecutive rows of an input, and where they came from.

    `first_row` counts data rows from 0 across the whole input (malformed rows included);
    `line_of` gives the line a row starts on, for CSV input. `malformed` lists the records
    of this stretch of the input that could not be read as rows (only when collected).
    """

    table: pa.Table
    first_row: int
    malformed: list[MalformedRow] = field(default_factory=list)
    _block: RecordLines | None = field(default=None, repr=False)
    _records: np.ndarray | None = field(default=None, repr=False)

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    def line_of(self, row: int) -> int | None:
        """The line on which row `row` of this chunk starts, or None when not from text."""
        if self._block is None or self._records is None:
            return None
        return int(self._block.record_lines()[self._records[row]])


def chunks_of(
    table: pa.Table,
    first_row: int,
    malformed: list[MalformedRow],
    block: RecordLines,
    records: np.ndarray,
    batch_size: int,
) -> Iterator[Chunk]:
    """The rows parsed from one block, in chunks of at most `batch_size` rows, each with the
    malformed records that lie among its rows, so that bad rows stay in file order."""
    pieces = -(-table.num_rows // batch_size)
    step = max(-(-table.num_rows // pieces), 1) if pieces else 1
    row_lines = block.record_lines()[records] if len(records) else np.empty(0, np.int64)
    taken = 0
    for start in range(0, max(table.num_rows, 1), step):
        stop = min(start + step, table.num_rows)
        bound = int(row_lines[stop]) if stop < table.num_rows else None
        mine = [
            bad
            for bad in malformed[taken:]
            if bound is None or bad.line is None or bad.line < bound
        ]
        yield Chunk(
            table.slice(start, step), first_row + start + taken, mine, block, records[start:stop]
        )
        taken += len(mine)


class TableReader:
    """An open input: its columns, and its rows as an iterator of chunks.

    `text_columns` is true when every value arrives as the text it was written as (CSV):
    columns then hold strings, and missing values (empty fields) are nulls.
    """

    source: str
    columns: list[str]
    schema: pa.Schema
    text_columns: bool = False
    size: int | None = None

    @property
    def bytes_read(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Chunk]:
        raise NotImplementedError

    def close(self) -> None:
        """Close the input (does not close stdin)."""

    def __enter__(self) -> TableReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_limit(flag: str, value: int) -> None:
    """A limit given on the command line must be a positive whole number."""
    if value < 1:
        raise UsageError(f"{flag} must be at least 1 (got {value})")


def check_width(columns: int, limit: int, where: str) -> None:
    if columns > limit:
        raise DataError(
            f"{where}: {columns:,} columns, more than the limit of {limit:,} "
            "(--max-columns raises it)"
        )


@contextmanager
def file_errors(name: str) -> Iterator[None]:
    """A file that cannot be opened, as the data error a user sees."""
    try:
        yield
    except FileNotFoundError as exc:
        raise DataError(f"{name}: no such file") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{name}: is a directory, not a file") from exc
    except PermissionError as exc:
        raise DataError(f"{name}: permission denied") from exc


class CsvReader(TableReader):
    """A CSV stream with a header row, or with `column_names` for one without."""

    text_columns = True

    def __init__(
        self,
        stream: IO[bytes],
        raw: IO[bytes],
        source: str,
        delimiter: str,
        batch_size: int,
        malformed: MalformedRows,
        max_columns: int = MAX_COLUMNS,
        column_names: list[str] | None = None,
    ) -> None:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        self.source = source
        self.has_header = column_names is None
        self._raw = raw
        self._stream = stream
        self._batch_size = batch_size
        self._collect = malformed == "collect"
        self.size = file_size(raw)
        try:
            self._blocks = RecordBlocks(
                stream, source=source, delimiter=delimiter, block_size=FIRST_BLOCK_BYTES,
                header=self.has_header,
            )  # fmt: skip
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{source}: cannot read ({exc})") from exc
        if column_names is None:
            self.columns = _header_names(self._blocks.header, delimiter, source, max_columns)
        else:
            self.columns = list(column_names)
        self.schema = pa.schema([(name, pa.string()) for name in self.columns])
        self._read_options = pcsv.ReadOptions(column_names=self.columns)
        self._convert_options = pcsv.ConvertOptions(
            column_types=self.schema,
            strings_can_be_null=True,
            null_values=[""],
        )
        self._delimiter = delimiter

    @property
    def bytes_read(self) -> int:
        # For gzip input, progress is measured against the compressed file.
        return self._raw.tell() if self._raw.seekable() else self._blocks.bytes_read

    def __iter__(self) -> Iterator[Chunk]:
        first_row = 0
        try:
            for block in self._blocks:
                table, malformed, records = self._parse(block)
                if table.num_rows:
                    per_row = len(block.data) / (table.num_rows + len(malformed))
                    # A little under --batch-size, so that a block is usually one chunk:
                    # every chunk costs a fixed ~3 ms of pandas and scikit-learn checks.
                    wanted = int(per_row * self._batch_size * 0.95)
                    self._blocks.block_size = min(max(wanted, MIN_BLOCK_BYTES), MAX_BLOCK_BYTES)
                yield from chunks_of(table, first_row, malformed, block, records, self._batch_size)
                first_row += table.num_rows + len(malformed)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{self.source}: cannot read ({exc})") from exc

    def _parse(self, block: Block) -> tuple[pa.Table, list[MalformedRow], np.ndarray]:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        options = pcsv.ParseOptions(delimiter=self._delimiter, newlines_in_values=block.has_quotes)
        try:
            table = pcsv.read_csv(
                pa.py_buffer(block.data),
                read_options=self._read_options,
                parse_options=options,
                convert_options=self._convert_options,
            )
        except pa.ArrowInvalid:
            return self._parse_row_by_row(block)
        return table, [], np.arange(table.num_rows)

    def _parse_row_by_row(self, block: Block) -> tuple[pa.Table, list[MalformedRow], np.ndarray]:
        """Parse a block that failed, on one thread so that pyarrow numbers the bad records,
        and as one piece: pyarrow cuts a block into pieces of 1 MiB to parse them in parallel,
        and fails on a record that spans more than two of them."""
        import pyarrow as pa
        import pyarrow.csv as pcsv

        invalid: list[Any] = []

        def handle(row: Any) -> str:
            invalid.append(row)
            return "skip" if self._collect else "error"

        lines = block.record_lines()
        try:
            table = pcsv.read_csv(
                pa.py_buffer(block.data),
                read_options=pcsv.ReadOptions(
                    column_names=self.columns, use_threads=False, block_size=len(block.data) + 1
                ),
                parse_options=pcsv.ParseOptions(
                    delimiter=self._delimiter,
                    newlines_in_values=block.has_quotes,
                    invalid_row_handler=handle,
                ),
                convert_options=self._convert_options,
            )
        except pa.ArrowInvalid as exc:
            if invalid:
                row = invalid[-1]
                raise DataError(
                    f"{self.source}, line {_line(lines, row.number)}: {_field_count(row)}"
                ) from exc
            raise self._unreadable(block, exc) from exc
        malformed = [
            MalformedRow(_line(lines, row.number), f"{_field_count(row)}: {_show(row.text)}")
            for row in invalid
        ]
        dropped = [row.number - 1 for row in invalid if row.number is not None]
        records = np.delete(np.arange(len(lines)), dropped)
        return table, malformed, records

    def _unreadable(self, block: Block, exc: Exception) -> DataError:
        try:
            block.data.decode("utf-8")
        except UnicodeDecodeError as bad:
            line = block.first_line + block.data.count(b"\n", 0, bad.start)
            return DataError(f"{self.source}, line {line}: not UTF-8 text")
        reason = str(exc).strip().splitlines()[0].removeprefix("CSV parse error: ")
        last = block.first_line + block.data.count(b"\n", 0, len(block.data) - 1)
        return DataError(
            f"{self.source}, lines {block.first_line}-{last}: malformed CSV ({reason})"
        )

    def close(self) -> None:
        if self._raw is not sys.stdin.buffer:
            self._stream.close()
            self._raw.close()


def _header_names(header: bytes, delimiter: str, source: str, max_columns: int) -> list[str]:
    names = header_fields(header, delimiter, source)
    check_width(len(names), max_columns, f"{source}, line 1")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{source}, line 1: column '{name}' appears twice in the header")
        seen.add(name)
    return names


def header_fields(header: bytes, delimiter: str, source: str) -> list[str]:
    if not header.strip():
        raise DataError(f"{source}: the file is empty (expected a header row)")
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}, line 1: not UTF-8 text") from exc
    return next(csv.reader([text], delimiter=delimiter))


def _line(lines: np.ndarray, number: int | None) -> int | None:
    if number is None or not 0 < number <= len(lines):
        return None
    return int(lines[number - 1])


def _field_count(row: Any) -> str:
    expected, found = row.expected_columns, row.actual_columns
    message = f"expected {expected} field{'' if expected == 1 else 's'}, found {found}"
    if found > expected:  # most often a sentence or a number with a comma, unquoted
        message += ' (quote a value that holds the separator: "a, b")'
    return message


def _show(text: str) -> str:
    return repr(text if len(text) <= 200 else text[:197] + "...")


def file_size(handle: IO[bytes]) -> int | None:
    try:
        return os.fstat(handle.fileno()).st_size if handle.seekable() else None
    except (OSError, ValueError):
        return None
