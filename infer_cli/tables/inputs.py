"""Which format a table is in, and opening an input in it.

The format is the one an option names (`--input-format`, `--output-format`), else the one
the file's extension names; `-`, a device or a pipe is CSV unless one is named. It is never
guessed: an extension that names no format is refused rather than read or written as CSV.
A text input (CSV, TSV, JSON Lines) may be gzip-compressed, which is recognised by its first
bytes, on stdin too.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
from typing import IO

from ..choices import INPUT_FORMATS, OUTPUT_FORMATS, InputFormat, OutputFormat, listed
from ..errors import DataError, UsageError
from .atomic import STDIO
from .limits import DEFAULT_BATCH_ROWS, MAX_COLUMNS
from .parquet import ParquetReader
from .readers import (
    CsvReader,
    MalformedRows,
    TableReader,
    check_limit,
    describe,
    file_errors,
)

# What each extension names. `.gz` after a text format's extension is read (gzip is known
# by its first bytes), but only CSV is written compressed.
EXTENSIONS: dict[str, str] = {
    ".csv.gz": "csv.gz",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".parq": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
COMPRESSED_TEXT = {".tsv.gz": "tsv", ".tab.gz": "tsv", ".jsonl.gz": "jsonl", ".ndjson.gz": "jsonl"}
INPUT_EXTENSIONS = tuple(EXTENSIONS) + tuple(COMPRESSED_TEXT)
GZIP_SIGNATURE = b"\x1f\x8b"
PARQUET_SIGNATURE = b"PAR1"
ZIP_SIGNATURE = b"PK\x03\x04"


def input_format(path: str, named: str | None, flag: str = "--input-format") -> InputFormat:
    """The format of an input: `named`, else its extension's; CSV for stdin."""
    kind = _format(path, named, INPUT_FORMATS, flag, readable=True)
    return kind  # type: ignore[return-value]


def output_format(path: str, named: str | None, flag: str = "--output-format") -> OutputFormat:
    """The format of an output: `named`, else its extension's; CSV for stdout."""
    kind = _format(path, named, OUTPUT_FORMATS, flag, readable=False)
    return kind  # type: ignore[return-value]


def _format(
    path: str, named: str | None, choices: tuple[str, ...], flag: str, *, readable: bool
) -> str:
    if named is not None:
        if named not in choices:
            raise UsageError(f"{flag}: unknown format '{named}' (choose from {listed(choices)})")
        return named
    if path == STDIO or _is_stream(path):
        return "csv"
    lowered = path.lower()
    for extension, kind in EXTENSIONS.items():
        if lowered.endswith(extension):
            return kind
    for extension, kind in COMPRESSED_TEXT.items():
        if lowered.endswith(extension):
            if readable:
                return kind
            raise UsageError(f"{path}: only CSV is written compressed (.csv.gz)")
    name = path.rsplit("/", 1)[-1]
    if lowered.endswith(".json"):
        other = (
            "--output-format mlflow-json for the predictions document `mlflow models predict` "
            "writes"
            if not readable
            else f"{flag} jsonl if it holds one object per line"
        )
        raise UsageError(
            f"{path}: .json could be several formats: use .jsonl for JSON Lines (one object "
            f"per line), or {other}"
        )
    suffix = f"extension '.{name.rsplit('.', 1)[1]}'" if "." in name.lstrip(".") else "extension"
    raise UsageError(
        f"{path}: cannot tell the format from its {suffix}; name it with {flag} {listed(choices)}"
    )


def _is_stream(path: str) -> bool:
    """Whether `path` is a device or a pipe (/dev/stdout, /dev/null, a shell's <(...)): like
    `-`, it has no extension to name a format, and is CSV unless one is named."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def field_separator(kind: str, delimiter: str | None) -> str:
    """The CSV field separator of a format: `delimiter` if given, else a tab for TSV."""
    if delimiter is not None:
        return delimiter
    return "\t" if kind == "tsv" else ","


def open_table(
    path: str,
    *,
    format: str | None = None,
    delimiter: str | None = None,
    batch_size: int = DEFAULT_BATCH_ROWS,
    malformed: MalformedRows = "error",
    max_columns: int = MAX_COLUMNS,
    column_names: list[str] | None = None,
) -> TableReader:
    """Open an input for streaming in chunks of at most `batch_size` rows.

    `malformed` says what a record that cannot be read as a row does: raise a `DataError`
    naming its line, or be collected in its chunk's `malformed` list. An input of more than
    `max_columns` columns is refused before any row is read. `column_names` reads a CSV
    without a header row, its fields taken as these columns in order.
    """
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1 (got {batch_size})")
    check_limit("--max-columns", max_columns)
    kind = input_format(path, format)
    if kind == "parquet":
        return ParquetReader(path, batch_size, max_columns)
    source = describe(path)
    raw, stream = open_text(path, kind)
    try:
        if kind == "jsonl":
            from .json_lines import JsonLinesReader

            return JsonLinesReader(stream, raw, source, batch_size, malformed, max_columns)
        return CsvReader(
            stream, raw, source, field_separator(kind, delimiter), batch_size, malformed,
            max_columns, column_names,
        )  # fmt: skip
    except BaseException:
        close_input(raw, stream)
        raise


def open_text(path: str, kind: str) -> tuple[IO[bytes], IO[bytes]]:
    """The file (or stdin) and the bytes to parse from it, decompressed when they begin with
    gzip's signature. A Parquet file or a zip archive in place of text is refused by name."""
    source = describe(path)
    if path == STDIO:
        raw: IO[bytes] = sys.stdin.buffer
    else:
        with file_errors(source):
            raw = open(path, "rb")  # noqa: SIM115 - closed by the reader that takes it
    try:
        head, stream = _peek(raw, 4)
        if head.startswith(GZIP_SIGNATURE):
            return raw, gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
        if path.lower().endswith(".gz"):
            raise DataError(f"{source}: cannot read (not gzip-compressed, though named .gz)")
        if head == PARQUET_SIGNATURE:
            where = "give the file with -i" if path == STDIO else "name it with --input-format"
            raise UsageError(
                f"{source}: this is a Parquet file, not {kind} text; Parquet cannot be read "
                f"from stdin (its index is at its end): {where}"
                if path == STDIO
                else f"{source}: this is a Parquet file, not {kind} text ({where} parquet)"
            )
        if head == ZIP_SIGNATURE:
            raise DataError(f"{source}: a zip archive (an Excel workbook?), not {kind} text")
    except BaseException:
        close_input(raw, raw)
        raise
    return raw, stream


def close_input(raw: IO[bytes], stream: IO[bytes]) -> None:
    """Close an input opened by `open_text` (stdin stays open)."""
    if raw is not sys.stdin.buffer:
        stream.close()
        raw.close()


def _peek(raw: IO[bytes], size: int) -> tuple[bytes, IO[bytes]]:
    """The first `size` bytes of `raw`, and a stream that still begins with them."""
    if raw.seekable():
        position = raw.tell()
        head = raw.read(size)
        raw.seek(position)
        return head, raw
    head = b""
    while len(head) < size:
        more = raw.read(size - len(head))
        if not more:
            break
        head += more
    return head, io.BufferedReader(_Replayed(head, raw))


class _Replayed(io.RawIOBase):
    """A stream read from a pipe, with the bytes already taken from it put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
