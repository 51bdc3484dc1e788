"""What `predict` shows on stderr: its progress, and the summary of the figures
`batch.run_predict` records."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from .console import count, key_value_table, seconds
from .drift import render_drift


def render_predict_summary(console: Console, figures: dict[str, Any]) -> None:
    """The table of a finished `predict` run, and where its rows went. Read, predict and
    write overlap in time; rows per second are over the scoring, the model's load apart."""
    times = figures["seconds"]
    cluster = []
    if figures.get("engine") == "dask":
        cluster = [
            ("partitions", count(figures["partitions"])),
            ("workers", count(figures["workers"])),
        ]
    model = []
    if figures.get("model_uri"):
        version = figures.get("model_version")
        named = f" (version {version})" if version is not None else ""
        model = [("model", f"{figures['model_uri']}{named}")]
    rows = [
        *model,
        *cluster,
        *([("start-up time", seconds(times["start_up"]))] if times.get("start_up") else []),
        ("model load time", seconds(times["model_load"])),
        ("rows read", count(figures["rows_read"])),
        ("rows scored", count(figures["rows_scored"])),
        ("rows rejected", count(figures["rows_rejected"])),
        ("read time", seconds(times["read"])),
        ("predict time", seconds(times["predict"])),
        ("write time", seconds(times["write"])),
        ("scoring time", seconds(times["scoring"])),
        ("wall time", seconds(times["wall"])),
        ("rows per second", f"{count(figures['rows_per_second'] or 0)} (over scoring time)"),
        ("peak memory", f"{figures['peak_memory_mib']:.0f} MiB"),
    ]
    console.print(key_value_table("Scored", rows))
    output = "stdout" if figures["output"] == "-" else figures["output"]
    console.print(f"[green]{_rows(figures['rows_scored'])} written to[/] {output}")
    if figures["rows_rejected"] and figures.get("rejects"):
        rejected = _rows(figures["rows_rejected"], "rejected ")
        console.print(f"[yellow]{rejected} written to[/] {figures['rejects']}")
    render_drift(console, figures.get("drift"))


def _rows(number: int, kind: str = "") -> str:
    return f"{count(number)} {kind}{'row' if number == 1 else 'rows'}"


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
