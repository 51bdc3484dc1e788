"""Reading a Parquet file in chunks whose size is bounded by what they decode to.

A Parquet file says in its footer how many columns it has, which is checked before a column
is read. What it does not say is what its text comes to: a dictionary lets one long string
stand for every row, so a few kilobytes can decode to gigabytes. Text columns are read as
dictionaries and measured, and a batch is cut so that no chunk decodes to more than
`DECODED_BYTES`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, UsageError, first_line
from .atomic import STDIO
from .csv_blocks import MAX_RECORD_BYTES
from .limits import MAX_COLUMNS
from .readers import Chunk, TableReader, check_width, file_errors

if TYPE_CHECKING:
    import pyarrow as pa

# As much as a CSV block holds at most: the chunks of either format cost alike.
DECODED_BYTES = 64 * 1024 * 1024


class ParquetReader(TableReader):
    def __init__(self, path: str, batch_size: int, max_columns: int = MAX_COLUMNS) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if path == STDIO:
            raise UsageError(
                "Parquet cannot be read from stdin (it is read from its end); give a file with -i"
            )
        self.source = path
        self._batch_size = batch_size
        try:
            with file_errors(path):
                footer = pq.ParquetFile(path)
            # From the footer, before a column is decoded.
            check_width(footer.metadata.num_columns, max_columns, path)
            self.schema = footer.schema_arrow
            self._text = [item.name for item in self.schema if is_text_type(item.type)]
            if self._text:
                footer.close()
                footer = pq.ParquetFile(path, read_dictionary=self._text)
            self._file = footer
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({first_line(exc)})") from exc
        self.columns = list(self.schema.names)
        self.size = os.path.getsize(path)
        self._rows_read = 0

    @property
    def bytes_read(self) -> int:
        total = self._file.metadata.num_rows
        return int(self.size * self._rows_read / total) if total and self.size else 0

    def __iter__(self) -> Iterator[Chunk]:
        import pyarrow as pa

        try:
            for batch in self._file.iter_batches(batch_size=self._batch_size):
                for piece in self._pieces(pa.Table.from_batches([batch])):
                    yield Chunk(self._decoded(piece), self._rows_read)
                    self._rows_read += piece.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise DataError(
                f"{self.source}: not a readable Parquet file ({first_line(exc)})"
            ) from exc

    def _pieces(self, table: pa.Table) -> Iterator[pa.Table]:
        """The table in consecutive slices, each decoding to at most DECODED_BYTES of text."""
        sizes = _decoded_sizes(table)
        if sizes is None or int(sizes.sum()) <= DECODED_BYTES:
            yield table
            return
        oversized = np.flatnonzero(sizes > MAX_RECORD_BYTES)
        if len(oversized):
            row = self._rows_read + int(oversized[0]) + 1
            raise DataError(
                f"{self.source}, row {row}: {sizes[oversized[0]] / 2**20:,.0f} MiB of text once "
                f"decoded, more than the {MAX_RECORD_BYTES // 2**20} MiB a row may hold"
            )
        ends = np.cumsum(sizes)
        start = 0
        while start < len(sizes):
            before = int(ends[start - 1]) if start else 0
            stop = int(np.searchsorted(ends, before + DECODED_BYTES, side="right"))
            stop = max(stop, start + 1)
            yield table.slice(start, stop - start)
            start = stop

    def _decoded(self, table: pa.Table) -> pa.Table:
        """The text columns read as dictionaries, back to the file's own types."""
        import pyarrow as pa

        for name in self._text:
            position = table.schema.get_field_index(name)
            column = table.column(position)
            if pa.types.is_dictionary(column.type):
                wanted = self.schema.field(name)
                table = table.set_column(position, wanted, column.cast(wanted.type))
        return table

    def close(self) -> None:
        self._file.close()


def is_text_type(kind: pa.DataType) -> bool:
    """Whether Arrow values of this type are text or bytes (what decodes to Python strings)."""
    import pyarrow as pa

    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _decoded_sizes(table: pa.Table) -> np.ndarray | None:
    """The bytes of text each row's dictionary columns hold once decoded, or None when the
    table has no dictionary column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sizes = None
    for column in table.columns:
        if not (pa.types.is_dictionary(column.type) and is_text_type(column.type.value_type)):
            continue
        if sizes is None:
            sizes = np.zeros(table.num_rows, dtype=np.int64)
        offset = 0
        for chunk in column.chunks:
            lengths = pc.fill_null(pc.binary_length(chunk.dictionary), 0).cast(pa.int64())
            taken = pc.fill_null(pc.take(lengths, chunk.indices), 0)
            sizes[offset : offset + len(chunk)] += taken.to_numpy(zero_copy_only=False)
            offset += len(chunk)
    return sizes
