"""Reading a whole table at once, for training: CSV or TSV (through pandas, as training
always read it), JSON Lines or Parquet, its format decided as `inputs` decides it and its
width checked before its rows are read."""

from __future__ import annotations

import io
import zlib
from typing import IO

import pandas as pd

from ..errors import DataError, first_line
from .atomic import STDIO
from .csv_blocks import RecordBlocks
from .inputs import close_input, field_separator, input_format, open_text
from .limits import MAX_COLUMNS
from .readers import check_limit, check_width, describe, file_errors, header_fields


def read_table(
    path: str,
    *,
    format: str | None = None,
    delimiter: str | None = None,
    max_columns: int = MAX_COLUMNS,
) -> pd.DataFrame:
    """Read a whole table into a DataFrame; errors name the file.

    A table of more than `max_columns` columns is refused before its rows are read.
    """
    check_limit("--max-columns", max_columns)
    name = describe(path)
    kind = input_format(path, format)
    if kind == "parquet":
        return _read_parquet(path, max_columns)
    raw, stream = open_text(path, kind)
    try:
        source: IO[bytes] = stream
        if path == STDIO or kind == "jsonl":
            # Read twice (the header's width, then the rows), or parsed line by line.
            source = io.BytesIO(_read_all(stream, name))
        if kind == "jsonl":
            frame = _read_json_lines(source, name)
            check_width(len(frame.columns), max_columns, name)
        else:
            frame = _read_csv(path, source, name, field_separator(kind, delimiter), max_columns)
    finally:
        close_input(raw, stream)
    if frame.empty:
        raise DataError(f"{name}: has a header but no rows")
    return frame


def _read_all(stream: IO[bytes], name: str) -> bytes:
    try:
        return stream.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: cannot read ({exc})") from exc


def _read_csv(
    path: str, source: IO[bytes], name: str, separator: str, max_columns: int
) -> pd.DataFrame:
    if isinstance(source, io.BytesIO):
        columns = _count_columns(source, name, separator)
        source.seek(0)
    else:
        raw, header_stream = open_text(path, "csv")
        try:
            columns = _count_columns(header_stream, name, separator)
        finally:
            close_input(raw, header_stream)
    check_width(columns, max_columns, f"{name}, line 1")
    try:
        with file_errors(name):
            return pd.read_csv(source, sep=separator, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{name}: the file is empty (expected a header row)") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{name}: malformed CSV ({_parser_reason(exc)})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: not UTF-8 text (byte {exc.start})") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: cannot read ({exc})") from exc


def _read_json_lines(source: IO[bytes], name: str) -> pd.DataFrame:
    """JSON Lines whole: the values keep their JSON types, and text stays text."""
    if not source.read(1):
        raise DataError(f"{name}: the file is empty (expected one JSON object per line)")
    source.seek(0)
    try:
        return pd.read_json(source, lines=True, dtype=False)
    except ValueError as exc:
        raise DataError(f"{name}: not JSON Lines ({first_line(exc)})") from exc


def _count_columns(source: IO[bytes], name: str, separator: str) -> int:
    """The columns of a CSV's header row, read without its rows."""
    try:
        header = RecordBlocks(source, source=name, delimiter=separator, block_size=1).header
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: cannot read ({exc})") from exc
    return len(header_fields(header, separator, name))


def _read_parquet(path: str, max_columns: int) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path == STDIO:
        raise DataError(
            "Parquet cannot be read from stdin (it is read from its end); give a file with -i"
        )
    try:
        with file_errors(path):
            with pq.ParquetFile(path) as file:
                check_width(file.metadata.num_columns, max_columns, path)
            return pd.read_parquet(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({first_line(exc)})") from exc


def _parser_reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0]
    return text.removeprefix("Error tokenizing data. C error: ")
