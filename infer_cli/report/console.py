"""The console on stderr, so stdout carries only data, and the pieces every report is built
of: notices, two-column tables, metric tables, and numbers written for people."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table

from ..errors import printable

if TYPE_CHECKING:
    pass


def stderr_console(quiet: bool = False) -> Console:
    """The console every report goes to; `quiet` silences all but errors."""
    return Console(stderr=True, quiet=quiet, highlight=False)


def render_notices(console: Console, notices: Iterable[str]) -> None:
    for notice in notices:
        console.print(f"[yellow]note:[/] {plain(notice)}", soft_wrap=True)


def plain(text: object) -> str:
    """Text a file, a model or a client wrote (a column name, a label), for the console: its
    control characters escaped and its square brackets taken as text, not as rich markup."""
    return escape(printable(str(text)))


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
            plain(label),
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
    labels = [plain(label) for label in metrics["confusion_matrix"]["labels"]]
    confusion.add_column("")
    for label in labels:
        confusion.add_column(label, justify="right")
    for label, row in zip(labels, metrics["confusion_matrix"]["matrix"], strict=True):
        confusion.add_row(label, *(count(value) for value in row))
    return [quality, confusion]
