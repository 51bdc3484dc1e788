"""Rendering of the model card (`info`), quality reports (`evaluate`) and benchmarks (`bench`).

Each report has a rich rendering for people (on stderr) and a JSON form for machines.
"""

from __future__ import annotations

import math
import os
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table

from ..batch.evaluation import Evaluation
from ..benchmarking import BenchReport
from ..core.card import Inspection, ModelCard
from .console import count, key_value_table, metric_tables


def inspection_json(inspection: Inspection) -> dict[str, Any]:
    """The model card as `info --json` prints it."""
    card = inspection.card.to_dict()
    return {
        "path": str(inspection.path),
        "kind": inspection.kind,
        "size_bytes": inspection.size_bytes,
        "sha256_matches": inspection.matches,
        "sha256_actual": inspection.sha256_actual,
        "pickle_based": inspection.pickle_based,
        "trust": inspection.trust.to_dict() if inspection.trust else None,
        **card,
        # The card's own `serialization` is the bare name, also given as `model_format`.
        "model_format": card["serialization"],
        "serialization": inspection.serialization,
    }


def render_model_card(console: Console, inspection: Inspection) -> None:
    card = inspection.card
    if inspection.matches is None and card.source.get("format") == "mlflow":
        integrity = "[yellow]no recorded hash (MLflow records none)[/]"
    elif inspection.matches is None:
        integrity = "[yellow]no recorded hash (bare file)[/]"
    elif inspection.matches:
        integrity = "[green]matches model.json[/]"
    else:
        integrity = (
            f"[bold red]MISMATCH[/]: recorded {card.sha256[:12]}, "
            f"file {inspection.sha256_actual[:12]}; the file was changed after it was saved"
        )
    overview = [
        ("path", str(inspection.path)),
        ("kind", inspection.kind),
        ("source", _source(card)),
        ("task", card.task),
        ("target", str(card.target) if card.target is not None else "-"),
        ("classes", ", ".join(map(str, card.classes)) if card.classes else "-"),
        ("model", str(card.training.get("model", "-"))),
        ("format", inspection.serialization),
        ("pickle-based", "[yellow]yes[/]" if inspection.pickle_based else "no"),
        ("trusted types", _trust(inspection)),
        ("size", _size(inspection.size_bytes)),
        ("sha256", inspection.sha256_actual),
        ("integrity", integrity),
        ("created", card.created or "-"),
        ("versions", ", ".join(f"{k} {v}" for k, v in card.versions.items()) or "-"),
    ]
    parts: list[Any] = [
        key_value_table("Model", overview, justify="left"),
        _signature_table(inspection),
    ]
    if card.metrics:
        parts.extend(metric_tables(card.metrics, card.task))
    console.print(Group(*parts))


def _source(card: ModelCard) -> str:
    """Where the model came from, as far as its files say."""
    source = card.source
    if source.get("format") == "mlflow":
        facts = [f"MLflow {source.get('mlflow_version', '')}".strip()]
        facts += [f"{key} {source[key]}" for key in ("run_id", "model_uuid") if key in source]
        return f"{', '.join(facts)} ({source.get('flavor', 'sklearn')} flavor)"
    if card.training:
        return "infer-cli train"
    return "-"


def _trust(inspection: Inspection) -> str:
    trust = inspection.trust
    if trust is None:
        return "-"
    if not trust.untrusted:
        return "only those skops trusts itself"
    parts = []
    if trust.vouched:
        parts.append(f"{', '.join(trust.vouched)} (vouched for by the model's metadata)")
    if trust.named:
        parts.append(f"{', '.join(trust.named)} (named by --trust-types)")
    if trust.refused:
        parts.append(f"[bold red]not trusted[/]: {', '.join(trust.refused)}")
    return "; ".join(parts)


def _signature_table(inspection: Inspection) -> Table:
    signature = inspection.card.signature
    table = Table(
        title="Signature" + (" (by position)" if signature.positional else ""),
        box=box.SIMPLE_HEAD,
        title_justify="left",
        min_width=44,
    )
    table.add_column("column")
    table.add_column("type")
    table.add_column("required")
    for column in signature.inputs:
        kind = f"{column.dtype} ({column.numpy_dtype})" if column.numpy_dtype else column.dtype
        table.add_row(column.name, kind, "yes" if column.required else "no")
    for name in signature.passthrough:
        table.add_row(name, "pass-through", "no")
    return table


def _size(size: int) -> str:
    if size < 1024:
        return f"{count(size)} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


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
    console.print(Group(*parts))


def _threshold_table(evaluation: Evaluation) -> Table:
    table = Table(
        title=f"Decision threshold on P({evaluation.positive_class})",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption=f"in use: {evaluation.threshold:g}",
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
