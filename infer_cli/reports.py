"""Rendering of the model card (`info`), quality reports (`evaluate`) and benchmarks (`bench`).

Each report has a rich rendering for people (on stderr) and a JSON form for machines.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table

from .model import Inspection
from .summary import count, key_value_table, metric_tables


def inspection_json(inspection: Inspection) -> dict[str, Any]:
    """The model card as `info --json` prints it."""
    card = inspection.card.to_dict()
    return {
        "path": str(inspection.path),
        "kind": inspection.kind,
        "serialization": inspection.serialization,
        "size_bytes": inspection.size_bytes,
        "sha256_matches": inspection.matches,
        "sha256_actual": inspection.sha256_actual,
        **card,
    }


def render_model_card(console: Console, inspection: Inspection) -> None:
    card = inspection.card
    if inspection.matches is None:
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
        ("task", card.task),
        ("target", str(card.target) if card.target is not None else "-"),
        ("classes", ", ".join(map(str, card.classes)) if card.classes else "-"),
        ("model", str(card.training.get("model", "-"))),
        ("format", inspection.serialization),
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
        table.add_row(column.name, column.dtype, "yes" if column.required else "no")
    for name in signature.passthrough:
        table.add_row(name, "pass-through", "no")
    return table


def _size(size: int) -> str:
    if size < 1024:
        return f"{count(size)} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"
