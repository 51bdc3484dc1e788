"""Batch scoring: an input read in chunks, validated, predicted and written, bad rows set aside.

`BatchScoring.run` streams an input to an output through the model core, with reading,
predicting and writing overlapped on threads. It never prints: it keeps a `ScoringReport`
up to date (also when it fails, for a summary of a failed run) and calls a progress callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import pandas as pd

from ..core.coded import Coded
from ..core.drift import DriftCounts, ProfileBins
from ..core.model import Model, Predictions, Prepared
from ..core.profiling import model_columns
from ..core.signature import NUMERIC_TYPES
from ..errors import DataError, SchemaError, UsageError
from ..tables.atomic import STDIO, atomic_output
from ..tables.inputs import field_separator, input_format, open_table, output_format
from ..tables.limits import DEFAULT_BATCH_ROWS, MAX_COLUMNS
from ..tables.paths import refuse_aliases
from ..tables.readers import Chunk, MalformedRows, TableReader
from ..tables.writers import DeferredWriter, TableWriter, open_writer
from .frames import arrow_memory_pool, label_array, read_coded_columns
from .hints import delimiter_hint, header_hint
from .stages import run_stages

if TYPE_CHECKING:
    import pyarrow as pa

PREDICTION_COLUMN = "prediction"
REASON_COLUMN = "reject_reason"
# Formats that store types: numbers the model reads from CSV text are written as numbers.
TYPED_FORMATS = ("parquet", "jsonl")

Progress = Callable[["ScoringReport", int, "int | None"], None]


@dataclass(frozen=True)
class ScoringOptions:
    """What `infer-cli predict` was asked to do."""

    input: str = STDIO
    output: str = STDIO
    input_format: str | None = None
    output_format: str | None = None
    delimiter: str | None = None
    """The CSV field separator, in and out; None: a comma, or a tab for TSV."""
    header: bool = True
    """False: the CSV input has no header row; its fields are the model's columns in order."""
    batch_size: int = DEFAULT_BATCH_ROWS
    proba: bool = False
    keep: tuple[str, ...] | None = None
    skip_bad_rows: bool = False
    rejects: str | None = None
    max_columns: int = MAX_COLUMNS
    precision: int | None = None
    """Decimal places the probabilities are rounded to; None: as computed."""
    threshold: float | None = None
    """A binary classifier's decision threshold, over the one saved in its card."""
    positive_class: str | None = None


@dataclass
class ScoringReport:
    """Counts and stage times of a run, as far as it got. Stages overlap, so their times can
    add up to more than the wall time."""

    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    read_seconds: float = 0.0
    predict_seconds: float = 0.0
    write_seconds: float = 0.0
    notices: list[str] = field(default_factory=list)
    drift: DriftCounts | None = None
    """The scored rows counted into the training profile's bins, when there is one."""


@dataclass(frozen=True)
class _Plan:
    """The columns written, decided once from the input's header and the model."""

    keep: list[str]
    output_schema: pa.Schema
    rejects_schema: pa.Schema
    typed_numbers: dict[str, str]


@dataclass(frozen=True)
class _Columns:
    """A chunk's columns as the model reads them; those of few distinct values also coded."""

    columns: dict[str, Any]
    coded: dict[str, Coded]


@dataclass(frozen=True)
class _Scored:
    rows_read: int
    output: pa.Table
    rejects: pa.Table | None


class BatchScoring:
    """One run of batch scoring; `report` holds its figures, also after a failure."""

    def __init__(
        self, model: Model, options: ScoringOptions, drift: ProfileBins | None = None
    ) -> None:
        self.model = model
        self.options = options
        self.report = ScoringReport(drift=DriftCounts.empty(drift) if drift else None)
        self._drift_bins = drift
        self._reader: TableReader | None = None
        self._plan: _Plan | None = None
        self.decision = model.decision(options.threshold, options.positive_class)

    def run(self, progress: Progress | None = None) -> ScoringReport:
        import pyarrow as pa

        pa.set_memory_pool(arrow_memory_pool())
        options = self.options
        output_kind = output_format(options.output, options.output_format)
        input_format(options.input, options.input_format)
        rejects_kind = None
        if options.rejects is not None:
            rejects_kind = output_format(options.rejects, None, "--rejects")
        self._check_options()
        # Malformed records are collected in either mode, so that a failing run names the bad
        # row that comes first in the file, whether malformed or refused by the model.
        malformed: MalformedRows = "collect"
        with ExitStack() as stack:
            reader = stack.enter_context(
                open_table(
                    options.input,
                    format=options.input_format,
                    delimiter=options.delimiter,
                    batch_size=options.batch_size,
                    malformed=malformed,
                    max_columns=options.max_columns,
                    column_names=None if options.header else self.model.signature.names,
                )
            )
            self._reader = reader
            plan = self._plan = self._make_plan(reader, typed=output_kind in TYPED_FORMATS)
            rejects: TableWriter | None = None
            if options.rejects is not None and rejects_kind is not None:
                handle = stack.enter_context(atomic_output(options.rejects))
                rejects = open_writer(
                    handle, rejects_kind, plan.rejects_schema,
                    delimiter=field_separator(rejects_kind, options.delimiter),
                )  # fmt: skip
            output = stack.enter_context(atomic_output(options.output))

            def open_output() -> TableWriter:
                separator = field_separator(output_kind, options.delimiter)
                return open_writer(output, output_kind, plan.output_schema, delimiter=separator)

            # Nothing, not even a header, reaches stdout before the first rows are scored.
            writer: TableWriter = DeferredWriter(open_output, plan.output_schema)

            def score(item: tuple[Chunk, _Columns]) -> _Scored:
                began = time.perf_counter()
                scored = self._score(*item)
                self.report.predict_seconds += time.perf_counter() - began
                self.report.rows_read += scored.rows_read
                if progress is not None:
                    progress(self.report, reader.bytes_read, reader.size)
                return scored

            def write(scored: _Scored) -> None:
                began = time.perf_counter()
                writer.write(scored.output)
                if rejects is not None and scored.rejects is not None:
                    rejects.write(scored.rejects)
                self.report.write_seconds += time.perf_counter() - began
                self.report.rows_scored += scored.output.num_rows
                self.report.rows_rejected += (
                    0 if scored.rejects is None else scored.rejects.num_rows
                )

            run_stages(self._timed(reader), score, write)
            began = time.perf_counter()
            writer.close()
            if rejects is not None:
                rejects.close()
            self.report.write_seconds += time.perf_counter() - began
        return self.report

    def _check_options(self) -> None:
        options = self.options
        if options.proba and not self.model.can_predict_proba:
            raise UsageError(f"--proba: the model at {self.model.path} does not give probabilities")
        if self.decision is not None:
            self.report.notices.append(f"labels at {self.decision.describe()}")
        if options.skip_bad_rows and options.rejects is None:
            raise UsageError("--on-bad-rows skip needs --rejects FILE, so that no row is lost")
        if options.rejects is not None:
            if not options.skip_bad_rows:
                raise UsageError("--rejects is only written with --on-bad-rows skip")
            if options.rejects == STDIO:
                raise UsageError("--rejects must be a file, not stdout")
        refuse_aliases(
            [("--input", options.input)],
            [("--output", options.output), ("--rejects", options.rejects)],
        )

    def _timed(self, reader: TableReader) -> Iterator[tuple[Chunk, _Columns]]:
        """Chunks with the columns the model reads, made on the reading thread, so that the
        predicting thread only predicts (pyarrow parses the numbers without the GIL)."""
        chunks = iter(reader)
        while True:
            began = time.perf_counter()
            chunk = next(chunks, None)
            features = None if chunk is None else self._features(chunk.table)
            self.report.read_seconds += time.perf_counter() - began
            if chunk is None or features is None:
                return
            yield chunk, features

    def _make_plan(self, reader: TableReader, *, typed: bool) -> _Plan:
        import pyarrow as pa

        signature = self.model.signature
        header = pd.DataFrame(columns=reader.columns, dtype=object)
        try:
            validated = signature.validate(header)
        except SchemaError as error:
            hint = delimiter_hint(reader) or header_hint(reader, signature)
            raise SchemaError(error.reason + hint, source=reader.source) from None
        self.report.notices.extend(validated.notices)
        keep = list(reader.columns) if self.options.keep is None else list(self.options.keep)
        present = {item.name: item for item in reader.schema}
        unknown = [name for name in keep if name not in present]
        if unknown:
            raise UsageError(
                f"--keep: no column '{unknown[0]}' in {reader.source} "
                f"(it has: {_listed(reader.columns)})"
            )
        typed_numbers: dict[str, str] = {}
        if typed and reader.text_columns and not signature.positional:
            typed_numbers = {
                column.name: column.dtype
                for column in signature.inputs
                if column.dtype in NUMERIC_TYPES and column.name in keep
            }
        fields = []
        for name in keep:
            kind = typed_numbers.get(name)
            number_type = pa.int64() if kind == "integer" else pa.float64()
            fields.append(pa.field(name, number_type if kind else present[name].type))
        fields.append(pa.field(PREDICTION_COLUMN, self._prediction_type()))
        if self.options.proba:
            fields.extend(pa.field(name, pa.float64()) for name in self._proba_names())
        taken: set[str] = set()
        for item in fields:
            if item.name in taken:
                raise UsageError(
                    f"the input already has a column '{item.name}'; leave it out with --keep"
                )
            taken.add(item.name)
        reason = REASON_COLUMN
        while reason in present:
            reason += "_"
        rejects_schema = reader.schema.append(pa.field(reason, pa.string()))
        return _Plan(keep, pa.schema(fields), rejects_schema, typed_numbers)

    def _prediction_type(self) -> pa.DataType:
        import pyarrow as pa

        classes = self.model.card.classes
        if self.model.is_classifier and classes:
            return pa.array(classes).type
        return pa.float64() if not self.model.is_classifier else pa.string()

    def _proba_names(self) -> list[str]:
        return [f"proba_{label}" for label in self.model.card.classes or []]

    def _score(self, chunk: Chunk, read: _Columns) -> _Scored:
        assert self._reader is not None and self._plan is not None
        rows_read = chunk.num_rows + len(chunk.malformed)
        rows = chunk.table.num_rows
        columns = read.columns
        if not chunk.malformed and self._reader.text_columns:
            try:
                scored = self.model.predict_arrays(
                    columns, rows, proba=self.options.proba, decision=self.decision,
                    coded=read.coded,
                )  # fmt: skip
            except DataError:
                scored = None  # scored again below, where the refused rows are found
            if scored is not None:
                self._count_drift(columns, scored, rows, read.coded)
                return _Scored(rows_read, self._output(chunk.table, columns, scored), None)
        frame = pd.DataFrame(columns, index=pd.RangeIndex(rows))
        if chunk.malformed and not self.options.skip_bad_rows:
            self._fail_in_file_order(chunk, frame)
        refused: dict[int, tuple[str | None, str]] = {}
        try:
            predictions = self._predict(frame)
        except DataError as error:
            refused = self._refused_rows(frame, error)
            if not self.options.skip_bad_rows:
                row, (column, reason) = next(iter(sorted(refused.items())))
                raise self._locate(chunk, row, column, reason) from None
            good = np.ones(len(frame), dtype=bool)
            good[list(refused)] = False
            frame = frame.iloc[np.flatnonzero(good)]
            predictions = self._predict(frame)
        kept = chunk.table
        if refused:
            import pyarrow as pa

            kept = kept.filter(pa.array(good))
        if self._drift_bins is not None:
            columns = model_columns(self.model.signature, frame)
            self._count_drift(columns, predictions, len(frame))
        output = self._output(kept, frame, predictions)
        return _Scored(rows_read, output, self._rejects(chunk, refused))

    def _count_drift(
        self,
        columns: Mapping[str, Any],
        predictions: Predictions,
        rows: int,
        coded: Mapping[str, Coded] | None = None,
    ) -> None:
        if self._drift_bins is not None and self.report.drift is not None:
            # The training profile holds the model's own labels, not those at a threshold.
            self.report.drift.observe(
                self._drift_bins, columns, predictions.model_values, rows, coded
            )

    def _fail_in_file_order(self, chunk: Chunk, frame: pd.DataFrame) -> NoReturn:
        """Raise the first bad row of a chunk that holds a malformed record: a row before it
        that the model refuses, else the record itself."""
        assert self._reader is not None
        bad = chunk.malformed[0]
        if bad.line is not None:
            before = np.flatnonzero(
                [(chunk.line_of(row) or 0) < bad.line for row in range(chunk.num_rows)]
            )
            rows = frame.iloc[before].reset_index(drop=True)
            try:
                if len(rows):
                    self._predict(rows)
            except DataError as error:
                row, (column, reason) = min(self._refused_rows(rows, error).items())
                raise self._locate(chunk, int(before[row]), column, reason) from None
        where = f"line {bad.line}" if bad.line is not None else f"row {chunk.first_row + 1}"
        raise DataError(f"{self._reader.source}, {where}: {bad.reason}")

    def _predict(self, frame: pd.DataFrame) -> Predictions:
        return self.model.predict(frame, proba=self.options.proba, decision=self.decision)

    def _features(self, table: pa.Table) -> _Columns:
        assert self._reader is not None
        columns, coded = read_coded_columns(
            self.model.signature, table, from_text=self._reader.text_columns
        )
        return _Columns(columns, coded)

    def _refused_rows(
        self, frame: pd.DataFrame, error: DataError
    ) -> dict[int, tuple[str | None, str]]:
        """Rows of a chunk the model refuses: bad values first, then rows the estimator fails on."""
        if isinstance(error, SchemaError) and error.row is None:
            raise error
        refused: dict[int, tuple[str | None, str]] = {
            bad.row: (bad.column, bad.reason) for bad in self.model.signature.bad_rows(frame)
        }
        rows = np.flatnonzero(~np.isin(np.arange(len(frame)), list(refused)))
        if not self.options.skip_bad_rows and refused:
            rows = rows[rows < min(refused)]
        if len(rows):
            self._unscorable_rows(frame, rows, refused)
        if not refused:
            raise error
        return refused

    def _unscorable_rows(
        self, frame: pd.DataFrame, rows: np.ndarray, refused: dict[int, tuple[str | None, str]]
    ) -> None:
        """Add the rows the estimator fails on, found by halving groups that fail together.

        Every such row is found, however many there are, so that which rows are set aside
        does not depend on how the input was cut into chunks. The rows are validated once
        and only the estimator is called on each group. Where most rows fail, a failing
        group is tried row by row at once, as halving would cost two calls per row.
        """
        prepared = self.model.prepare(frame=frame.iloc[rows])
        features = prepared.features
        # A threshold is applied to the probabilities: a row they fail on is as refused.
        proba = self.options.proba or self.decision is not None
        pending = [np.arange(len(rows))]
        settled = failed = 0
        while pending:
            part = pending.pop()
            group = features[part] if isinstance(features, np.ndarray) else features.iloc[part]
            try:
                self.model.predict_many([Prepared(group, len(part))], proba=proba)
                settled += len(part)
                continue
            except DataError as error:
                if len(part) > 1:
                    dense = settled >= 16 and failed * 2 > settled
                    pending.extend(np.array_split(part, len(part) if dense else 2)[::-1])
                    continue
                refused[int(rows[part[0]])] = (None, error.message)
                settled += 1
                failed += 1
                if not self.options.skip_bad_rows:
                    return

    def _locate(self, chunk: Chunk, row: int, column: str | None, reason: str) -> SchemaError:
        assert self._reader is not None
        return SchemaError(
            reason,
            column=column,
            row=chunk.first_row + row,
            source=self._reader.source,
            line=chunk.line_of(row),
        )

    def _output(
        self, kept: pa.Table, columns: Mapping[str, Any], predictions: Predictions
    ) -> pa.Table:
        import pyarrow as pa

        assert self._plan is not None
        schema = self._plan.output_schema
        arrays: list[Any] = []
        for name in self._plan.keep:
            kind = self._plan.typed_numbers.get(name)
            if kind is None:
                arrays.append(kept[name])
                continue
            numbers = pa.array(pd.to_numeric(columns[name], errors="coerce"), from_pandas=True)
            arrays.append(numbers.cast(schema.field(name).type))
        label_type = schema.field(PREDICTION_COLUMN).type
        arrays.append(label_array(predictions.values, label_type, self.model.card.classes))
        if self.options.proba and predictions.probabilities is not None:
            probabilities = predictions.probabilities
            if self.options.precision is not None:
                probabilities = np.round(probabilities, self.options.precision)
            arrays.extend(pa.array(np.ascontiguousarray(column)) for column in probabilities.T)
        return pa.Table.from_arrays(arrays, schema=schema)

    def _rejects(self, chunk: Chunk, refused: dict[int, tuple[str | None, str]]) -> pa.Table | None:
        import pyarrow as pa

        assert self._plan is not None
        if not refused and not chunk.malformed:
            return None
        schema = self._plan.rejects_schema
        reasons = [
            f"line {bad.line}: {bad.reason}" if bad.line is not None else bad.reason
            for bad in chunk.malformed
        ]
        # The rejects are written in file order: malformed records and refused rows merged.
        lines = [bad.line or 0 for bad in chunk.malformed]
        width = len(schema) - 1
        parts = []
        if chunk.malformed:
            blank = [pa.nulls(len(chunk.malformed), schema.field(i).type) for i in range(width)]
            parts.append(
                pa.Table.from_arrays([*blank, pa.array(reasons, pa.string())], schema=schema)
            )
        if refused:
            rows = sorted(refused)
            lines += [chunk.line_of(row) or chunk.first_row + row for row in rows]
            located = [str(self._locate(chunk, row, *refused[row])) for row in rows]
            source = f"{self._reader.source}, " if self._reader is not None else ""
            located = [text.removeprefix(source) for text in located]
            picked = chunk.table.take(pa.array(rows))
            columns = [picked.column(i) for i in range(width)]
            parts.append(
                pa.Table.from_arrays([*columns, pa.array(located, pa.string())], schema=schema)
            )
        merged = pa.concat_tables(parts)
        return merged.take(pa.array(np.argsort(lines, kind="stable")))


def _listed(names: list[str], most: int = 20) -> str:
    """Names for a message, the first `most` of them when there are more."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown}, ... ({len(names)} in all)"
