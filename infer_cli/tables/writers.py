"""Writing result tables to a binary handle, chunk after chunk, in one output format.

CSV (plain or gzip), Parquet, JSON Lines and MLflow's `{"predictions": [...]}` document.
Missing values are written as missing (empty in CSV, null elsewhere), never as NaN.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa


class TableWriter:
    """Writes tables of one schema, in order, to a binary handle, in one format."""

    def __init__(self, handle: IO[bytes], schema: pa.Schema) -> None:
        self.schema = schema
        self._handle = handle

    def write(self, table: pa.Table) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the output (a Parquet footer, the end of a gzip stream); not the handle."""


def open_writer(
    handle: IO[bytes], format: str, schema: pa.Schema, *, delimiter: str = ","
) -> TableWriter:
    """A writer of `format` for tables of `schema`; CSV and Parquet write the header now."""
    if format == "parquet":
        return _ParquetWriter(handle, schema)
    if format == "jsonl":
        return _JsonLinesWriter(handle, schema)
    if format == "mlflow-json":
        return _MlflowJsonWriter(handle, schema)
    if format == "tsv" and delimiter == ",":
        delimiter = "\t"
    return _CsvWriter(handle, schema, delimiter=delimiter, compress=format == "csv.gz")


class DeferredWriter(TableWriter):
    """A writer opened on its first table (or when closed), so that a run that fails before
    anything is scored writes nothing, not even a header, where it cannot take it back
    (stdout)."""

    def __init__(self, open: Callable[[], TableWriter], schema: pa.Schema) -> None:
        self.schema = schema
        self._open = open
        self._writer: TableWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = self._open()
        self._writer.write(table)

    def close(self) -> None:
        if self._writer is None:
            self._writer = self._open()
        self._writer.close()


def missing_as_null(table: pa.Table) -> pa.Table:
    """The table with float NaN turned into nulls: missing is empty in CSV, null in JSON."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, column in enumerate(table.columns):
        if pa.types.is_floating(column.type) and column.null_count < len(column):
            nan = pc.is_nan(column)
            if pc.any(nan).as_py():
                table = table.set_column(
                    index, table.field(index), pc.if_else(nan, pa.scalar(None, column.type), column)
                )
    return table


class _CsvWriter(TableWriter):
    def __init__(
        self, handle: IO[bytes], schema: pa.Schema, *, delimiter: str, compress: bool
    ) -> None:
        super().__init__(handle, schema)
        self._gzip = gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=6) if compress else None
        self._sink: Any = self._gzip if self._gzip is not None else handle
        self._delimiter = delimiter
        self._special = re.compile(b'["\r\n' + re.escape(delimiter.encode()) + b"]")
        self._marks = (b'"', b"\r", b"\n", delimiter.encode())
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerow(schema.names)
        self._sink.write(buffer.getvalue().encode("utf-8"))

    def write(self, table: pa.Table) -> None:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        if table.num_rows == 0:
            return
        table = _floats_positional(missing_as_null(table.cast(self.schema))).combine_chunks()
        quote = [self._needs_quotes(column) for column in table.columns]
        if not any(quote):
            options = pcsv.WriteOptions(
                include_header=False, delimiter=self._delimiter, quoting_style="none"
            )
            output = pa.BufferOutputStream()
            pcsv.write_csv(table, output, options)
            self._sink.write(memoryview(output.getvalue()))
            return
        # pyarrow would quote every text value of the chunk; quote only those that need it,
        # so that the output does not depend on how the input was cut into chunks.
        self._sink.write(self._joined(table, quote))

    def _joined(self, table: pa.Table, quote: list[bool]) -> memoryview:
        import pyarrow as pa
        import pyarrow.compute as pc

        fields = []
        for column, needed in zip(table.columns, quote, strict=True):
            text = column if _is_text(column.type) else pc.cast(column, pa.string())
            if needed:
                escaped = pc.replace_substring(text, '"', '""')
                quoted = pc.binary_join_element_wise('"', escaped, '"', "")
                text = pc.if_else(
                    pc.match_substring_regex(text, self._special.pattern.decode()), quoted, text
                )
            fields.append(text)
        lines = pc.binary_join_element_wise(
            *fields, self._delimiter, null_handling="replace", null_replacement=""
        )
        terminated = pc.binary_join_element_wise(lines, "", "\n").combine_chunks()
        _, offsets, data = terminated.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int32)
        start = bounds[terminated.offset]
        stop = bounds[terminated.offset + len(terminated)]
        return memoryview(data)[start:stop]

    def _needs_quotes(self, column: pa.ChunkedArray) -> bool:
        if not _is_text(column.type):
            return False
        for piece in column.chunks:
            _, offsets, data = piece.buffers()
            if data is None or len(piece) == 0:
                continue
            # A slice shares its parent's buffers: look only at its own values.
            bounds = np.frombuffer(offsets, dtype=np.int32)
            start, stop = bounds[piece.offset], bounds[piece.offset + len(piece)]
            # Measured: a copy and four memchr scans are 80 times faster than a regex.
            values = bytes(memoryview(data)[start:stop])
            if any(mark in values for mark in self._marks):
                return True
        return False

    def close(self) -> None:
        if self._gzip is not None:
            self._gzip.close()


def _floats_positional(table: pa.Table) -> pa.Table:
    """Float columns as text in one notation: pyarrow writes the shortest text that reads back
    as the same float64, but `1.5e-7` beside `0.25`; those few are written out in full."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, field in enumerate(table.schema):
        if not pa.types.is_floating(field.type):
            continue
        column = table.column(index)
        text = pc.cast(column, pa.string())
        exponent = pc.fill_null(pc.match_substring(text, "e"), False)
        if pc.any(exponent).as_py():
            values = column.to_numpy(zero_copy_only=False)
            fixed = text.to_numpy(zero_copy_only=False)
            for row in np.flatnonzero(exponent.to_numpy(zero_copy_only=False)):
                fixed[row] = np.format_float_positional(values[row], unique=True, trim="-")
            text = pa.chunked_array([pa.array(fixed, pa.string())])
        table = table.set_column(index, field.name, text)
    return table


def _is_text(kind: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(kind))


class _ParquetWriter(TableWriter):
    def __init__(self, handle: IO[bytes], schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        super().__init__(handle, schema)
        self._writer = pq.ParquetWriter(handle, schema)

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(missing_as_null(table.cast(self.schema)))

    def close(self) -> None:
        self._writer.close()


class _JsonLinesWriter(TableWriter):
    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        frame = missing_as_null(table.cast(self.schema)).to_pandas(types_mapper=pd.ArrowDtype)
        text = frame.to_json(orient="records", lines=True, force_ascii=False, double_precision=15)
        self._handle.write(text.encode("utf-8"))
        if not text.endswith("\n"):
            self._handle.write(b"\n")


class _MlflowJsonWriter(TableWriter):
    """What `mlflow models predict` writes, to the byte: `{"predictions": [...]}` holding the
    `prediction` column, or with probabilities the rows of them, as MLflow gives them for a
    model that serves `predict_proba`. The input columns are left out, as MLflow leaves them."""

    def __init__(self, handle: IO[bytes], schema: pa.Schema) -> None:
        super().__init__(handle, schema)
        after = schema.names.index("prediction") + 1
        self._columns = schema.names[after:] or ["prediction"]
        self._separator = b""
        self._handle.write(b'{"predictions": [')

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        columns = [table.column(name).to_pylist() for name in self._columns]
        rows = zip(*columns, strict=True)
        values = columns[0] if len(columns) == 1 else [list(row) for row in rows]
        self._handle.write(self._separator + ", ".join(map(json.dumps, values)).encode())
        self._separator = b", "

    def close(self) -> None:
        self._handle.write(b"]}")
