"""What `predict` shows of drift on stderr: a table of each column's PSI against the training
profile, its values outside the training range, unseen categories and missing values then
and now, with the columns past the warning level marked; and what `profile` says it wrote."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from .console import count, seconds

PREDICTION = "prediction"


def render_drift(console: Console, drift: dict[str, Any] | None) -> None:
    """The drift table of a run's figures (`drift` section); nothing without a profile."""
    if drift is None:
        return
    if not drift["enough_rows"]:
        console.print(
            f"[yellow]drift:[/] too few rows to judge ({count(drift['rows'])} scored; "
            f"at least {count(drift['min_rows'])} are needed), nothing flagged",
            soft_wrap=True,
        )
        return
    table = Table(
        title="Drift against the training profile",
        caption=f"PSI above {drift['threshold']:g} is marked: the column has moved. "
        f"Profile: {drift['profile']}; counted in {seconds(drift['seconds'])}.",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("column")
    for heading in ("PSI", "out of range", "unseen", "missing"):
        table.add_column(heading, justify="right")
    table.add_column("")
    rows = list(drift["columns"].items())
    if drift["prediction"] is not None:
        rows.append((PREDICTION, drift["prediction"]))
    for position, (name, column) in enumerate(rows):
        marked = column["drifted"]
        table.add_row(
            f"[bold]{name}[/]" if marked else name,
            f"{column['psi']:.3f}",
            percent(column["out_of_range_share"]),
            percent(column["unseen_share"]),
            f"{percent(column['training_missing_share'])} → {percent(column['missing_share'])}",
            "[red bold]drift[/]" if marked else "",
            end_section=position == len(drift["columns"]) - 1,
        )
    console.print(table)


def render_profile_written(console: Console, written: Any) -> None:
    """The line `infer-cli profile` ends with."""
    profile = written.profile
    predictions = " and the predictions" if profile.prediction is not None else ""
    console.print(
        f"profile of {count(profile.rows)} rows ({len(profile.columns)} columns{predictions}) "
        f"written to {written.path}",
        soft_wrap=True,
    )


def percent(value: float | None) -> str:
    """A share as a percentage; `-` where there is none to give."""
    if value is None:
        return "-"
    if 0 < value < 0.001:
        return "<0.1%"
    return f"{value:.1%}"
