"""Rendering of reports and timing summaries with rich, on stderr so stdout carries only data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group, JustifyMethod
from rich.table import Table

from .timing import Stopwatch, peak_memory_mb

if TYPE_CHECKING:
    from ..training import TrainResult


def stderr_console(quiet: bool = False) -> Console:
    """The console every report goes to; `quiet` silences all but errors."""
    return Console(stderr=True, quiet=quiet, highlight=False)


def render_notices(console: Console, notices: Iterable[str]) -> None:
    for notice in notices:
        console.print(f"[yellow]note:[/] {notice}", soft_wrap=True)


def key_value_table(
    title: str, rows: Iterable[tuple[str, str]], *, justify: JustifyMethod = "right"
) -> Table:
    """A two-column table of labelled figures (right-aligned) or facts (`justify="left"`)."""
    table = Table(
        title=title, box=box.SIMPLE_HEAD, show_header=False, title_justify="left", min_width=44
    )
    table.add_column(style="bold")
    table.add_column(justify=justify)
    for label, value in rows:
        table.add_row(label, value)
    return table


def seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def count(value: int) -> str:
    return f"{value:,}"


def render_train_report(
    console: Console, result: TrainResult, saved_to: str, stopwatch: Stopwatch
) -> None:
    """Rows and columns used, training time, and the held-out metrics."""
    roles = result.roles
    used = [
        ("rows (train / test)", f"{count(result.rows_train)} / {count(result.rows_test)}"),
        ("numeric columns", _names(roles.numeric)),
        ("categorical columns", _names(roles.categorical)),
        ("text columns", _names(roles.text)),
        ("left out (identifiers, --ignore)", _names(roles.identifiers + roles.ignored)),
        ("task / model", f"{result.card.task} / {result.model_name}"),
    ]
    if result.rows_dropped:
        used.insert(1, ("rows without a target (dropped)", count(result.rows_dropped)))
    timings = [(f"{name} time", seconds(value)) for name, value in stopwatch.phases.items()]
    timings += [
        ("wall time", seconds(stopwatch.elapsed())),
        ("peak memory", f"{peak_memory_mb():.0f} MiB"),
    ]
    parts: list[Any] = [key_value_table(f"Trained {result.card.target!r}", used)]
    parts.extend(metric_tables(result.card.metrics, result.card.task))
    parts.append(key_value_table("Timing", timings))
    console.print(Group(*parts))
    console.print(f"[green]saved[/] {saved_to}  (sha256 {result.card.sha256[:12]})")


def metric_tables(metrics: dict[str, Any], task: str, heading: str = "Test metrics") -> list[Table]:
    """Quality tables: per-class and confusion matrix for classification, errors for regression."""
    if task != "classification":
        return [
            key_value_table(
                f"{heading} ({count(metrics['rows'])} rows)",
                [
                    ("MAE", number(metrics["mae"])),
                    ("RMSE", number(metrics["rmse"])),
                    ("R²", f"{metrics['r2']:.4f}"),
                ],
            )
        ]
    quality = Table(
        title=f"{heading} ({count(metrics['rows'])} rows): accuracy {metrics['accuracy']:.4f}",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    for heading in ("class", "precision", "recall", "F1", "support"):
        quality.add_column(heading, justify="left" if heading == "class" else "right")
    for label, scores in metrics["per_class"].items():
        quality.add_row(
            label,
            f"{scores['precision']:.3f}",
            f"{scores['recall']:.3f}",
            f"{scores['f1']:.3f}",
            count(scores["support"]),
        )
    macro = metrics["macro"]
    quality.add_row(
        "[bold]macro avg[/]",
        f"{macro['precision']:.3f}",
        f"{macro['recall']:.3f}",
        f"{macro['f1']:.3f}",
        count(metrics["rows"]),
        end_section=True,
    )
    confusion = Table(
        title="Confusion matrix (rows: actual, columns: predicted)",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        min_width=56,
    )
    labels = [str(label) for label in metrics["confusion_matrix"]["labels"]]
    confusion.add_column("")
    for label in labels:
        confusion.add_column(label, justify="right")
    for label, row in zip(labels, metrics["confusion_matrix"]["matrix"], strict=True):
        confusion.add_row(label, *(count(value) for value in row))
    return [quality, confusion]


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "-"


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
