"""A log of tables in a directory: files that appear only once complete, rolled over by size
and age, and read back as one table.

Each file is written under a hidden `.part` name (`atomic.atomic_output`), synced and renamed
into place when it is rolled over or closed, so that a job listing the directory reads whole
files only. Names sort by the time a file was opened and carry the writing process's id, so
that several processes share a directory without ever picking the same name.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..choices import LOG_FORMATS
from ..errors import DataError
from .atomic import atomic_output

if TYPE_CHECKING:
    import pyarrow as pa

LOG_PREFIX = "predictions-"


@dataclass
class Outcome:
    """What a write or a roll-over did: rows and files made whole, rows lost to an error."""

    written: int = 0
    files: int = 0
    lost: int = 0
    error: str | None = None

    def add(self, other: Outcome) -> None:
        self.written += other.written
        self.files += other.files
        self.lost += other.lost
        self.error = other.error or self.error


class _Counting:
    """A binary handle that counts what is written through it: a file's size so far."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.size = 0

    def write(self, data: Any) -> int:
        written = self._handle.write(data)
        self.size += len(memoryview(data).cast("B"))
        return written

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._handle, attribute)


@dataclass
class _OpenFile:
    path: Path
    stack: ExitStack
    handle: _Counting
    schema: pa.Schema
    opened: float
    writer: Any = None
    rows: int = 0


@dataclass
class RollingFiles:
    """Tables appended to one open file per key (a model, say) in `directory`, in `format`.

    A file is rolled over (renamed into place) once it holds `max_bytes` or has been open
    `max_seconds`, and when a table of another schema comes for its key. A file that cannot
    be written is abandoned, its rows counted as lost; the next table tries a new file.
    """

    directory: Path
    format: str = "parquet"
    max_bytes: int = 64 * 1024 * 1024
    max_seconds: float = 300.0
    _open: dict[str, _OpenFile] = field(default_factory=dict)
    _made: int = 0

    def write(self, key: str, table: pa.Table) -> Outcome:
        """Append `table` to the file of `key`, opening or rolling files as needed."""
        outcome = Outcome()
        current = self._open.get(key)
        if current is not None and not table.schema.equals(current.schema):
            try:
                table = table.cast(current.schema)
            except Exception:
                outcome.add(self._roll(key))
                current = None
        try:
            if current is None:
                current = self._start(key, table.schema)
            self._append(current, table)
        except Exception as exc:
            outcome.add(self._abandon(key, exc, table.num_rows))
            return outcome
        if current.handle.size >= self.max_bytes:
            outcome.add(self._roll(key))
        return outcome

    def roll_due(self, now: float | None = None) -> Outcome:
        """Roll over the files open for `max_seconds` or more."""
        now = time.monotonic() if now is None else now
        outcome = Outcome()
        for key in [k for k, f in self._open.items() if now - f.opened >= self.max_seconds]:
            outcome.add(self._roll(key))
        return outcome

    def close(self) -> Outcome:
        """Roll over every open file."""
        outcome = Outcome()
        for key in list(self._open):
            outcome.add(self._roll(key))
        return outcome

    def next_due(self) -> float | None:
        """When the oldest open file is due to roll over (monotonic seconds), if one is open."""
        if not self._open:
            return None
        return min(f.opened for f in self._open.values()) + self.max_seconds

    def _start(self, key: str, schema: pa.Schema) -> _OpenFile:
        self._made += 1
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{LOG_PREFIX}{stamp}-{os.getpid()}-{self._made:06d}.{self.format}"
        stack = ExitStack()
        try:
            # Made again if it went away (a clean-up removed it); not if a file took its place.
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = _Counting(stack.enter_context(atomic_output(str(path))))
            opened = _OpenFile(path, stack, handle, schema, time.monotonic())
            if self.format == "parquet":
                from .writers import open_writer

                opened.writer = open_writer(handle, "parquet", schema)  # type: ignore[arg-type]
        except BaseException as exc:
            stack.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._open[key] = opened
        return opened

    def _append(self, current: _OpenFile, table: pa.Table) -> None:
        if current.writer is not None:
            current.writer.write(table)
        else:
            current.handle.write(json_lines(table))
        current.rows += table.num_rows

    def _roll(self, key: str) -> Outcome:
        current = self._open.pop(key)
        try:
            if current.writer is not None:
                current.writer.close()
            current.stack.close()
        except Exception as exc:
            self._open[key] = current
            return self._abandon(key, exc, 0)
        _sync_directory(self.directory)
        return Outcome(written=current.rows, files=1)

    def _abandon(self, key: str, exc: BaseException, unwritten: int) -> Outcome:
        """Give up the key's file (its partial file removed if it can be) and count its rows
        as lost, with the table that could not be written."""
        current = self._open.pop(key, None)
        lost = unwritten
        if current is not None:
            lost += current.rows
            with contextlib.suppress(BaseException):
                current.stack.__exit__(type(exc), exc, exc.__traceback__)
        return Outcome(lost=lost, error=_reason(exc))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _sync_directory(directory: Path) -> None:
    """Make a rename durable: the directory's entry is synced too (where the system allows)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def json_lines(table: pa.Table) -> bytes:
    """The rows of `table` as JSON Lines: nested columns as objects, times in ISO 8601."""
    rows = table.to_pylist()
    return "".join(json.dumps(row, default=_json_value) + "\n" for row in rows).encode()


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def log_files(directory: str | Path) -> list[Path]:
    """The complete log files in `directory`, oldest first (partial files are hidden)."""
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"{directory}: no such directory")
    found = [
        path
        for format in LOG_FORMATS
        for path in root.glob(f"{LOG_PREFIX}*.{format}")
        if path.is_file()
    ]
    return sorted(found, key=lambda path: path.name)


def read_log(directory: str | Path) -> tuple[pa.Table, int]:
    """Every row of the log files in `directory` as one table, with nested columns flattened
    (`inputs.NAME`, `probabilities.CLASS`), and how many files there were."""
    import pyarrow as pa

    paths = log_files(directory)
    if not paths:
        raise DataError(
            f"{directory}: no prediction log files ({LOG_PREFIX}*.parquet or .jsonl) in it"
        )
    tables = list(_read_each(paths))
    table = pa.concat_tables(tables, promote_options="permissive")
    while any(pa.types.is_struct(column.type) for column in table.columns):
        table = table.flatten()
    return table, len(paths)


def _read_each(paths: list[Path]) -> Iterator[pa.Table]:
    import pyarrow as pa
    import pyarrow.compute as pc

    for path in paths:
        try:
            if path.suffix == ".parquet":
                import pyarrow.parquet as pq

                table = pq.read_table(path)
            else:
                import pyarrow.json as pj

                table = pj.read_json(path)
                if "time" in table.column_names and pa.types.is_string(table["time"].type):
                    moment = pc.cast(table["time"], pa.timestamp("us", tz="UTC"))
                    table = table.set_column(table.schema.get_field_index("time"), "time", moment)
        except (OSError, pa.ArrowInvalid) as exc:
            raise DataError(f"{path}: cannot read it as a prediction log file ({exc})") from exc
        yield table
