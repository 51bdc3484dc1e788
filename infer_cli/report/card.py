"""What `train` and `info` show of a model: the train report, and the model card with its
JSON form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.table import Table

from ..core.card import Inspection, ModelCard
from ..timing import Stopwatch, peak_memory_mb
from .console import count, key_value_table, metric_tables, seconds

if TYPE_CHECKING:
    from ..training import TrainResult


def render_train_report(
    console: Console, result: TrainResult, saved_to: str, stopwatch: Stopwatch
) -> None:
    """Rows and columns used, the held-out metrics, the time of each phase, and where the
    model was saved."""
    roles = result.roles
    used = [
        ("rows (train / test)", f"{count(result.rows_train)} / {count(result.rows_test)}"),
        ("numeric columns", _names(roles.numeric)),
        ("categorical columns", _names(roles.categorical)),
        ("text columns", _names(roles.text)),
        ("left out (identifiers, --ignore)", _names(roles.identifiers + roles.ignored)),
        ("task / algorithm", f"{result.card.task} / {result.model_name}"),
    ]
    if result.rows_dropped:
        used.insert(1, ("rows without a target (dropped)", count(result.rows_dropped)))
    timings = [(f"{name} time", seconds(value)) for name, value in stopwatch.phases.items()]
    if stopwatch.start_up is not None:
        timings.insert(0, ("start-up time", seconds(stopwatch.start_up)))
    timings += [
        ("wall time", seconds(stopwatch.elapsed())),
        ("peak memory", f"{peak_memory_mb():.0f} MiB"),
    ]
    parts: list[Any] = [key_value_table(f"Trained {result.card.target!r}", used)]
    parts.extend(metric_tables(result.card.metrics, result.card.task))
    parts.append(key_value_table("Timing", timings))
    console.print(Group(*parts))
    directory = saved_to.rstrip("/") or "/"
    console.print(
        f"[green]model saved in[/] {directory}/ ({result.card.model_file}, sha256 "
        f"{result.card.sha256[:12]}): infer-cli predict -m {directory}",
        soft_wrap=True,
    )


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
        "route": inspection.route,
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
        *_registry_rows(card.source.get("registry")),
        ("task", card.task),
        ("target", str(card.target) if card.target is not None else "-"),
        ("classes", ", ".join(map(str, card.classes)) if card.classes else "-"),
        ("model", str(card.training.get("model", "-"))),
        ("format", inspection.serialization),
        ("pickle-based", "[yellow]yes[/]" if inspection.pickle_based else "no"),
        ("trusted types", _trust(inspection)),
        ("functions", _callables(inspection)),
        ("size", _size(inspection.size_bytes)),
        ("sha256", inspection.sha256_actual),
        ("integrity", integrity),
        *_decision_rows(card),
        ("created", card.created or "-"),
        ("versions", ", ".join(f"{k} {v}" for k, v in card.versions.items()) or "-"),
        ("route", inspection.route or "not loaded (info --route loads the model to find it)"),
    ]
    parts: list[Any] = [
        key_value_table("Model", overview, justify="left"),
        _signature_table(inspection),
    ]
    if card.metrics:
        parts.extend(metric_tables(card.metrics, card.task))
    console.print(Group(*parts))


def _decision_rows(card: ModelCard) -> list[tuple[str, str]]:
    """The decision threshold saved by `evaluate --save`, how it was chosen, its scores."""
    record = card.decision
    if not record:
        return []
    scores = ", ".join(
        f"{measure} {record[measure]:.4f}"
        for measure in ("precision", "recall", "f1")
        if isinstance(record.get(measure), (int, float))
    )
    chosen = f"chosen by {record.get('chosen_by', '-')} on {record.get('source', '-')}"
    if record.get("rows") is not None:
        chosen += f" ({count(int(record['rows']))} rows)"
    rule = f"{record.get('threshold')} on P({record.get('positive_class')})"
    return [("threshold", f"{rule}, {chosen}" + (f": {scores}" if scores else ""))]


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


def _registry_rows(registry: dict[str, Any] | None) -> list[tuple[str, str]]:
    """What the MLflow registry says of a model named by URI, and where the files are."""
    if not registry:
        return []
    if registry.get("version") is not None:
        named = f"{registry['name']} version {registry['version']}"
        details = [f"stage {registry.get('stage') or 'None'}"]
        details += [f"@{alias}" for alias in registry.get("aliases") or ()]
        named += f" ({', '.join(details)})"
    else:
        named = "- (not a registered version)"
    return [
        ("model URI", str(registry["uri"])),
        ("registered as", named),
        ("status", str(registry.get("status") or "-")),
        ("run", str(registry.get("run_id") or "-")),
        ("logged model", str(registry.get("model_id") or "-")),
        ("resolved in", f"{registry['store']} {registry['tracking_uri']}"),
        ("artifacts", str(registry.get("artifact_location") or "-")),
        ("cache", str(registry.get("cache") or "- (read in place)")),
    ]


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


def _callables(inspection: Inspection) -> str:
    """Every function and type object a skops model holds: code it may call as it predicts."""
    trust = inspection.trust
    if trust is None:
        return "-"
    parts = []
    if trust.functions:
        parts.append(f"[yellow]{', '.join(trust.functions)}[/]")
    if trust.type_objects:
        parts.append(f"type objects: {', '.join(trust.type_objects)}")
    return "; ".join(parts) or "none"


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


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "-"
