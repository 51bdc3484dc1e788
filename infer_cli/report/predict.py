"""What `predict` shows on stderr: its progress and closing summary, and the same figures
for --summary-json."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console

from .console import count, key_value_table, seconds
from .timing import peak_memory_mb

if TYPE_CHECKING:
    pass


def predict_figures(
    report: Any,
    *,
    model_load: float,
    wall: float,
    paths: dict[str, str | None],
    error: BaseException | None = None,
) -> dict[str, Any]:
    """The figures of a `predict` run, for the summary table and `--summary-json`.

    `report` is the run's `ScoringReport`, or None when it failed before reading any data.
    """
    from ..errors import ExitCode, InferError

    status, exit_code, message = "ok", int(ExitCode.OK), None
    if isinstance(error, KeyboardInterrupt):
        status, exit_code, message = "interrupted", int(ExitCode.INTERRUPTED), "interrupted"
    elif error is not None:
        status = "failed"
        exit_code = int(error.exit_code if isinstance(error, InferError) else ExitCode.INTERNAL)
        message = str(error) or type(error).__name__
    rows_read = report.rows_read if report else 0
    return {
        "status": status,
        "exit_code": exit_code,
        "error": message,
        **paths,
        "rows_read": rows_read,
        "rows_scored": report.rows_scored if report else 0,
        "rows_rejected": report.rows_rejected if report else 0,
        "seconds": {
            "model_load": round(model_load, 4),
            "read": round(report.read_seconds if report else 0.0, 4),
            "predict": round(report.predict_seconds if report else 0.0, 4),
            "write": round(report.write_seconds if report else 0.0, 4),
            "wall": round(wall, 4),
        },
        "rows_per_second": round(rows_read / wall) if wall > 0 else None,
        "peak_memory_mib": round(peak_memory_mb(), 1),
        **_cluster_figures(report),
    }


def _cluster_figures(report: Any) -> dict[str, Any]:
    """The cluster of an `--engine dask` run (a `DaskReport`); nothing for other runs."""
    if not hasattr(report, "partitions"):
        return {}
    return {
        "engine": "dask",
        "scheduler": report.scheduler or None,
        "partitions": report.partitions,
        "partitions_done": report.partitions_done,
        "workers": report.workers,
    }


def render_predict_summary(console: Console, figures: dict[str, Any]) -> None:
    """The table of a finished `predict` run. Read, predict and write overlap in time."""
    times = figures["seconds"]
    cluster = []
    if figures.get("engine") == "dask":
        cluster = [
            ("partitions", count(figures["partitions"])),
            ("workers", count(figures["workers"])),
        ]
    rows = [
        *cluster,
        ("model load time", seconds(times["model_load"])),
        ("rows read", count(figures["rows_read"])),
        ("rows scored", count(figures["rows_scored"])),
        ("rows rejected", count(figures["rows_rejected"])),
        ("read time", seconds(times["read"])),
        ("predict time", seconds(times["predict"])),
        ("write time", seconds(times["write"])),
        ("wall time", seconds(times["wall"])),
        ("rows per second", count(figures["rows_per_second"] or 0)),
        ("peak memory", f"{figures['peak_memory_mib']:.0f} MiB"),
    ]
    console.print(key_value_table("Scored", rows))
    if figures["rows_rejected"] and figures.get("rejects"):
        console.print(f"[yellow]rejected rows written to[/] {figures['rejects']}")


@contextmanager
def predict_progress(console: Console) -> Iterator[Callable[[Any, int, int | None], None] | None]:
    """A progress bar on stderr while scoring, when stderr is a terminal; else no callback."""
    if console.quiet or not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("scoring"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("scoring", total=None, rows="0")

        def update(report: Any, done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total, rows=f"{report.rows_read:,}")

        yield update
