"""What `bench` shows: batch throughput, single-row latency and a server under load."""

from __future__ import annotations

import math
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table

from ..benchmarking import BenchReport
from .console import count


def render_bench(console: Console, report: BenchReport) -> None:
    """The measurements side by side, then charts of latency against batch size and load."""
    table = Table(
        title=f"Benchmark (rows from {report.rows_source})",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption=(
            "per second: rows (batch, one row) or requests (server); "
            "latency: p50, or mean per call for batches"
        ),
        caption_justify="left",
        padding=(0, 1),
    )
    for heading in ("mode", "rows/conns", "per second", "latency", "p95", "p99", "errors"):
        table.add_column(heading, justify="left" if heading == "mode" else "right", no_wrap=True)
    for point in report.batches:
        table.add_row(
            "batch", f"{point.batch_size:,}", f"{point.rows_per_second:,.0f}",
            _ms(point.ms_per_call), "", "", "",
        )  # fmt: skip
    if report.single_row is not None:
        latency = report.single_row
        table.add_row(
            "one row", "1", f"{1000 / latency.p50:,.0f}", _ms(latency.p50), _ms(latency.p95),
            _ms(latency.p99), "", end_section=True,
        )  # fmt: skip
    for server in report.server:
        table.add_row(
            "server", f"{server.concurrency}", f"{server.requests_per_second:,.0f}",
            _ms(server.latency.p50), _ms(server.latency.p95), _ms(server.latency.p99),
            count(server.errors) if server.errors == 0 else f"[red]{count(server.errors)}[/]",
        )  # fmt: skip
    parts: list[Any] = [table]
    if report.batches:
        parts.append(
            _chart(
                "Time per call against batch size",
                [(f"{p.batch_size:>7,}", p.ms_per_call) for p in report.batches],
            )
        )
    if report.server:
        parts.append(
            _chart(
                "p99 latency against concurrent connections",
                [(f"{p.concurrency:>4}", p.latency.p99) for p in report.server],
            )
        )
    console.print(Group(*parts))
    for server in report.server:
        if server.first_error:
            console.print(
                f"[yellow]note:[/] {server.concurrency} connection(s): {server.first_error}"
            )


def _chart(title: str, points: list[tuple[str, float]], width: int = 40) -> Table:
    """Horizontal bars; on a log scale when the values span more than a factor of ten."""
    finite = [value for _, value in points if value == value and value > 0]
    high = max(finite) if finite else 1.0
    low = min(finite) if finite else 1.0
    logarithmic = high / low > 10
    scale = "log scale" if logarithmic else "linear scale"
    table = Table(
        title=f"{title} ({scale})",
        box=None,
        show_header=False,
        title_justify="left",
        padding=(0, 1),
    )
    table.add_column(justify="right", style="bold")
    table.add_column()
    for label, value in points:
        if not (value == value and value > 0):
            table.add_row(label, "-")
            continue
        if logarithmic:
            # Anchored below the smallest value so that it still gets a visible bar.
            share = math.log10(value / (low / 2)) / math.log10(high / (low / 2))
        else:
            share = value / high
        table.add_row(label, f"[cyan]{'█' * max(1, round(width * share))}[/] {_ms(value)}")
    return table


def _ms(value: float) -> str:
    if value != value:
        return "-"
    return f"{value * 1000:.0f} µs" if value < 1 else f"{value:,.1f} ms"
