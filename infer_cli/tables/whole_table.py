"""Reading a whole table at once, for training: a CSV (through pandas, as training always
read it) or a Parquet file, its width checked before its rows are read."""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from contextlib import ExitStack
from typing import IO

import pandas as pd

from ..errors import DataError, first_line
from .atomic import STDIO
from .csv_blocks import RecordBlocks
from .limits import MAX_COLUMNS
from .readers import check_limit, check_width, describe, file_errors, header_fields


def read_table(path: str, *, max_columns: int = MAX_COLUMNS) -> pd.DataFrame:
    """Read a whole CSV (or Parquet, by extension) into a DataFrame; errors name the file.

    A table of more than `max_columns` columns is refused before its rows are read.
    """
    check_limit("--max-columns", max_columns)
    name = describe(path)
    if path != STDIO and path.lower().endswith(".parquet"):
        return _read_parquet(path, max_columns)
    source: str | IO[bytes] = path
    if path == STDIO:
        source = io.BytesIO(sys.stdin.buffer.read())
    check_width(_count_columns(source, name), max_columns, f"{name}, line 1")
    if isinstance(source, io.BytesIO):
        source.seek(0)
    try:
        with file_errors(name):
            frame = pd.read_csv(source, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{name}: the file is empty (expected a header row)") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{name}: malformed CSV ({_parser_reason(exc)})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: not UTF-8 text (byte {exc.start})") from exc
    if frame.empty:
        raise DataError(f"{name}: has a header but no rows")
    return frame


def _count_columns(source: str | IO[bytes], name: str) -> int:
    """The columns of a CSV's header row, read without its rows."""
    with ExitStack() as stack:
        if isinstance(source, str):
            with file_errors(name):
                source = stack.enter_context(open(source, "rb"))
            if name.lower().endswith(".gz"):
                unzipped = gzip.GzipFile(fileobj=source, mode="rb")
                source = stack.enter_context(unzipped)  # type: ignore[assignment]
        try:
            header = RecordBlocks(source, source=name, delimiter=",", block_size=1).header
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{name}: cannot read ({exc})") from exc
    return len(header_fields(header, ",", name))


def _read_parquet(path: str, max_columns: int) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

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
