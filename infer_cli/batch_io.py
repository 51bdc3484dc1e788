"""Reading input tables and writing output files: `-` is stdin/stdout, file output is atomic."""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pandas as pd

from .errors import DataError

STDIO = "-"


def describe(path: str) -> str:
    """How a path is named in messages."""
    return "<stdin>" if path == STDIO else path


def read_table(path: str) -> pd.DataFrame:
    """Read a whole CSV (or Parquet, by extension) into a DataFrame; errors name the file."""
    name = describe(path)
    if path != STDIO and path.lower().endswith(".parquet"):
        return _read_parquet(path)
    source: str | IO[bytes] = sys.stdin.buffer if path == STDIO else path
    try:
        frame = pd.read_csv(source, encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise DataError(f"{name}: no such file") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{name}: is a directory, not a file") from exc
    except PermissionError as exc:
        raise DataError(f"{name}: permission denied") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{name}: the file is empty (expected a header row)") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{name}: malformed CSV ({_parser_reason(exc)})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: not UTF-8 text (byte {exc.start})") from exc
    if frame.empty:
        raise DataError(f"{name}: has a header but no rows")
    return frame


def _read_parquet(path: str) -> pd.DataFrame:
    import pyarrow as pa

    try:
        return pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc


def _parser_reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0]
    return text.removeprefix("Error tokenizing data. C error: ")


@contextmanager
def atomic_output(path: str) -> Iterator[IO[bytes]]:
    """A binary handle for `path` that becomes the file only if the block completes.

    The data goes to a temporary file in the same directory and is renamed over `path`
    at the end, so a failed or killed run leaves neither a partial file nor a destroyed
    previous one. `-` writes straight to stdout.
    """
    if path == STDIO:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    if target.is_dir():
        raise DataError(f"{path}: is a directory, not a file")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise DataError(f"{path}: no such directory '{directory}'")
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".part", dir=directory
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            os.chmod(temporary, target.stat().st_mode & 0o7777)
        else:
            os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_csv(frame: pd.DataFrame, handle: IO[bytes]) -> None:
    """CSV with a header, missing values as empty fields."""
    text = frame.to_csv(index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    handle.write(text.encode("utf-8"))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
