"""What `evaluate` shows: a model's quality on a labelled file."""

from __future__ import annotations

import os
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table

from ..batch.evaluation import Evaluation
from .console import count, key_value_table, metric_tables, plain


def render_evaluation(console: Console, evaluation: Evaluation) -> None:
    """Quality tables, ROC AUC, and for a binary model what the threshold does."""
    parts: list[Any] = metric_tables(
        evaluation.metrics, evaluation.task, f"Metrics on {os.path.basename(evaluation.source)}"
    )
    if evaluation.task == "classification":
        auc = "-" if evaluation.roc_auc is None else f"{evaluation.roc_auc:.4f}"
        parts.append(key_value_table("Ranking", [("ROC AUC", auc)]))
    if evaluation.sweep:
        parts.append(_threshold_table(evaluation))
    if evaluation.chosen_by is not None and evaluation.at_threshold is not None:
        at = evaluation.at_threshold
        rows = [
            ("asked", evaluation.chosen_by),
            ("threshold", f"{evaluation.threshold:g} on P({evaluation.positive_class})"),
            *((measure, f"{at[measure]:.4f}") for measure in ("precision", "recall", "f1")),
            ("saved in", evaluation.saved_to or "- (not saved: add --save)"),
        ]
        parts.append(key_value_table("Chosen threshold", rows, justify="left"))
    elif evaluation.saved_to is not None:
        parts.append(key_value_table("Threshold", [("saved in", evaluation.saved_to)]))
    console.print(Group(*parts))


def _threshold_table(evaluation: Evaluation) -> Table:
    table = Table(
        title=f"Decision threshold on P({plain(evaluation.positive_class)})",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption=_in_use(evaluation),
        caption_justify="left",
    )
    for heading in ("threshold", "precision", "recall", "F1", "accuracy", "predicted positive"):
        table.add_column(heading, justify="right")
    for point in evaluation.sweep:
        chosen = point["threshold"] == evaluation.threshold
        table.add_row(
            f"{point['threshold']:g}",
            f"{point['precision']:.3f}",
            f"{point['recall']:.3f}",
            f"{point['f1']:.3f}",
            f"{point['accuracy']:.3f}",
            count(int(point["predicted_positive"])),
            style="bold reverse" if chosen else None,
        )
    return table


def _in_use(evaluation: Evaluation) -> str:
    if evaluation.decision is None:
        return f"in use: {evaluation.threshold:g} (the model's own labels)"
    return (
        f"in use: {evaluation.threshold:g} (from {evaluation.decision.origin}); "
        "the metrics above are at this threshold"
    )
