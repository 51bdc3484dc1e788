"""`bench`: batch throughput against batch size, single-row latency, and a server under load,
measured in one run so the batch/real-time trade-off can be seen side by side.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .core.model import Model
from .core.store import load_model
from .errors import UsageError
from .loadgen import LoadResult, Target, run_load
from .tables.whole_table import read_table

BATCH_SIZES = (1, 10, 100, 1_000, 10_000, 100_000)
CONCURRENCY_LEVELS = (1, 4, 16, 64)


@dataclass(frozen=True)
class Percentiles:
    """Latency percentiles in milliseconds."""

    p50: float
    p95: float
    p99: float

    @classmethod
    def of(cls, latencies_ms: list[float]) -> Percentiles:
        if not latencies_ms:
            return cls(float("nan"), float("nan"), float("nan"))
        p50, p95, p99 = np.percentile(latencies_ms, [50, 95, 99])
        return cls(float(p50), float(p95), float(p99))


@dataclass(frozen=True)
class BatchPoint:
    """Scoring in batches of one size: calls made, rows per second, time per call."""

    batch_size: int
    calls: int
    rows_per_second: float
    ms_per_call: float


@dataclass(frozen=True)
class ServerPoint:
    """A server under load from `concurrency` connections."""

    concurrency: int
    requests: int
    errors: int
    requests_per_second: float
    latency: Percentiles
    first_error: str | None = None


@dataclass
class BenchReport:
    """Everything one `bench` run measured."""

    rows_source: str
    batches: list[BatchPoint] = field(default_factory=list)
    single_row: Percentiles | None = None
    single_row_calls: int = 0
    url: str | None = None
    server: list[ServerPoint] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def bench_model(
    model: str | None,
    input: str | None = None,
    *,
    input_format: str | None = None,
    max_batch: int,
    seconds: float,
    url: str | None = None,
    levels: tuple[int, ...] = CONCURRENCY_LEVELS,
    trust_types: list[str] | None = None,
    tracking_uri: str | None = None,
    on_loaded: Callable[[Model], None] = lambda _: None,
    on_progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """The `bench` command: check the options, load the model and the rows (from `input`,
    else the model's own), and measure."""
    if url:
        Target.parse(url, "/invocations")
        if not levels or min(levels) < 1:
            raise UsageError("--concurrency must be positive whole numbers")
    loaded = load_model(model, trust_types=trust_types, tracking_uri=tracking_uri)
    on_loaded(loaded)
    table = read_table(input, format=input_format) if input else None
    return run_bench(
        loaded, table, table_name=input, max_batch=max_batch, seconds=seconds,
        url=url, levels=levels, on_progress=on_progress,
    )  # fmt: skip


def run_bench(
    model: Model,
    table: pd.DataFrame | None,
    *,
    table_name: str | None = None,
    max_batch: int,
    seconds: float,
    url: str | None = None,
    levels: tuple[int, ...] = CONCURRENCY_LEVELS,
    on_progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Every measurement of `bench`, in one report: batches up to `max_batch` rows, single
    rows, and the server at `url` under each level of concurrency."""
    if table is not None:
        source = table_name or "the input rows"
    else:
        source = "the model's example rows" if model.card.example else "its signature"
    rows = sample_rows(model, table, count=1_000)
    report = BenchReport(rows_source=source)
    sizes = tuple(size for size in BATCH_SIZES if size <= max_batch)
    report.batches = measure_batches(
        model, rows, sizes, seconds_per_size=seconds / 2, on_progress=on_progress
    )
    if on_progress:
        on_progress("single rows")
    report.single_row_calls = max(100, int(seconds * 300))
    report.single_row = measure_single_row(model, rows, report.single_row_calls)
    if url:
        report.url = url
        report.server = measure_server(
            url, rows, levels, seconds_per_level=seconds, on_progress=on_progress
        )
    return report


def sample_rows(
    model: Model, table: pd.DataFrame | None, count: int, seed: int = 0
) -> pd.DataFrame:
    """`count` rows to score: drawn from `table`, else from the model's example rows, else
    made up from the signature's column types."""
    if table is not None and len(table):
        pool = table
    elif model.card.example:
        pool = pd.DataFrame(model.card.example)
    else:
        pool = _rows_from_signature(model)
    picks = np.random.default_rng(seed).integers(0, len(pool), size=count)
    return pool.iloc[picks].reset_index(drop=True)


def measure_batches(
    model: Model,
    rows: pd.DataFrame,
    sizes: tuple[int, ...] = BATCH_SIZES,
    *,
    seconds_per_size: float = 0.5,
    on_progress: Callable[[str], None] | None = None,
) -> list[BatchPoint]:
    """Rows per second when scoring batches of each size, repeated for about
    `seconds_per_size` each."""
    points = []
    for size in sizes:
        if on_progress:
            on_progress(f"batches of {size:,}")
        batch = rows.iloc[np.arange(size) % len(rows)].reset_index(drop=True)
        model.predict(batch)
        calls, began = 0, time.perf_counter()
        while True:
            model.predict(batch)
            calls += 1
            elapsed = time.perf_counter() - began
            if elapsed >= seconds_per_size:
                break
        points.append(BatchPoint(size, calls, size * calls / elapsed, elapsed / calls * 1000))
    return points


def measure_single_row(model: Model, rows: pd.DataFrame, calls: int = 500) -> Percentiles:
    """Latency of scoring one row at a time, in process, as a server without batching would."""
    singles = [rows.iloc[[i % len(rows)]] for i in range(calls)]
    model.predict(singles[0])
    latencies = []
    for single in singles:
        began = time.perf_counter()
        model.predict(single)
        latencies.append((time.perf_counter() - began) * 1000)
    return Percentiles.of(latencies)


def measure_server(
    url: str,
    rows: pd.DataFrame,
    levels: tuple[int, ...] = CONCURRENCY_LEVELS,
    *,
    seconds_per_level: float = 2.0,
    on_progress: Callable[[str], None] | None = None,
) -> list[ServerPoint]:
    """Requests per second and latency of single-row requests at each concurrency level."""
    target = Target.parse(url, "/invocations")
    first = rows.head(1)
    body = json.dumps(
        {"dataframe_split": json.loads(first.to_json(orient="split", index=False))}
    ).encode()
    points = []
    for level in levels:
        if on_progress:
            on_progress(f"{level} connection(s)")
        result: LoadResult = run_load(
            target, body, "application/json", concurrency=level, duration=seconds_per_level
        )
        points.append(
            ServerPoint(
                concurrency=level,
                requests=result.requests,
                errors=result.errors,
                requests_per_second=result.requests_per_second,
                latency=Percentiles.of(result.latencies_ms),
                first_error=result.first_error,
            )
        )
    return points


def _rows_from_signature(model: Model) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {}
    for column in model.signature.inputs:
        if column.dtype == "integer":
            columns[column.name] = rng.integers(0, 10, size=100)
        elif column.dtype in ("float", "any"):
            columns[column.name] = rng.normal(size=100)
        elif column.dtype == "text":
            columns[column.name] = ["an example sentence to score"] * 100
        elif column.dtype == "boolean":
            columns[column.name] = rng.integers(0, 2, size=100).astype(bool)
        else:
            columns[column.name] = ["unknown"] * 100
    return pd.DataFrame(columns)
