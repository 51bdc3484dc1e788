"""`GET /metrics`: what the whole server counted and what it serves, as Prometheus text.

The counts are the whole server's, summed over its workers whichever answers (see
`stats`): requests by status, latency and rows per model call in all, then the same for
each model (`model` label), reloads, each model's SHA-256 and version as an info gauge,
and each model's drift window (the answering worker's, as its models are).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .drift import DriftMonitors
from .served import ServedModels, model_version
from .stats import BATCH_BUCKETS, LATENCY_BUCKETS, RELOAD_OUTCOMES, ServeStats, Totals, _label

if TYPE_CHECKING:
    from ..core.model import Model


def prometheus(stats: ServeStats, models: ServedModels, drifts: DriftMonitors) -> str:
    """The counts, the models served and each model's drift window."""
    served = list(models.items())
    lines = _server(stats.totals())
    lines += _per_model(stats, [name for name, _ in served])
    lines += [
        "# HELP infer_cli_worker_requests_total Requests each worker process answered.",
        "# TYPE infer_cli_worker_requests_total counter",
        *(
            f'infer_cli_worker_requests_total{{worker="{number}"}} {count}'
            for number, count in enumerate(stats.requests_by_worker())
        ),
    ]
    lines += [
        "# HELP infer_cli_model_info The models being served: SHA-256 and version.",
        "# TYPE infer_cli_model_info gauge",
        *(_info(name, model) for name, model in served),
        "# HELP infer_cli_ready Whether the models are loaded and requests are answered.",
        "# TYPE infer_cli_ready gauge",
        f"infer_cli_ready {int(bool(served))}",
    ]
    if stats.log_enabled:
        lines += _prediction_log(stats.totals().log)
    text = "\n".join(lines) + "\n"
    for name, model in served:
        text += drifts.of(name).prometheus(model, name)
    return text


def _server(totals: Totals) -> list[str]:
    lines = [
        "# HELP infer_cli_requests_total Requests answered, by HTTP status.",
        "# TYPE infer_cli_requests_total counter",
        *(
            f'infer_cli_requests_total{{code="{code}"}} {n}'
            for code, n in sorted(totals.statuses.items())
        ),
    ]
    lines += _histogram(
        "infer_cli_request_duration_seconds",
        "Time from reading a request to sending its answer.",
        "",
        LATENCY_BUCKETS,
        totals.latency_buckets,
        totals.latency_seconds,
    )
    lines += _histogram(
        "infer_cli_batch_rows",
        "Rows scored per model call.",
        "",
        BATCH_BUCKETS,
        totals.batch_buckets,
        float(totals.batch_rows),
    )
    lines += [
        "# HELP infer_cli_model_reloads_total Hot reloads, by outcome.",
        "# TYPE infer_cli_model_reloads_total counter",
        *(
            f'infer_cli_model_reloads_total{{outcome="{outcome}"}} {totals.reloads[outcome]}'
            for outcome in RELOAD_OUTCOMES
        ),
    ]
    return lines


def _prediction_log(counts: dict[str, int]) -> list[str]:
    return [
        "# HELP infer_cli_prediction_log_rows_total Rows recorded in complete log files.",
        "# TYPE infer_cli_prediction_log_rows_total counter",
        f"infer_cli_prediction_log_rows_total {counts['written']}",
        "# HELP infer_cli_prediction_log_dropped_total Rows the prediction log dropped "
        "(its queue full, or its directory not writable).",
        "# TYPE infer_cli_prediction_log_dropped_total counter",
        f"infer_cli_prediction_log_dropped_total {counts['dropped']}",
        "# HELP infer_cli_prediction_log_files_total Prediction log files made whole.",
        "# TYPE infer_cli_prediction_log_files_total counter",
        f"infer_cli_prediction_log_files_total {counts['files']}",
    ]


def _per_model(stats: ServeStats, names: list[str]) -> list[str]:
    """Each model's own counts, under its name: its prediction requests by status, their
    latency, its model calls' rows and its reloads."""
    each = [(name, _label(name), stats.totals(name)) for name in names]
    lines = [
        "# HELP infer_cli_model_requests_total Prediction requests for a model, by HTTP status.",
        "# TYPE infer_cli_model_requests_total counter",
    ]
    for _, label, totals in each:
        lines += [
            f'infer_cli_model_requests_total{{model="{label}",code="{code}"}} {n}'
            for code, n in sorted(totals.statuses.items())
        ]
    for position, (_, label, totals) in enumerate(each):
        lines += _histogram(
            "infer_cli_model_request_duration_seconds",
            "Time from reading a prediction request for a model to sending its answer.",
            f'model="{label}"',
            LATENCY_BUCKETS,
            totals.latency_buckets,
            totals.latency_seconds,
            described=position == 0,
        )
    for position, (_, label, totals) in enumerate(each):
        lines += _histogram(
            "infer_cli_model_batch_rows",
            "Rows scored per call of a model.",
            f'model="{label}"',
            BATCH_BUCKETS,
            totals.batch_buckets,
            float(totals.batch_rows),
            described=position == 0,
        )
    lines += [
        "# HELP infer_cli_model_reload_attempts_total Hot reloads of a model, by outcome.",
        "# TYPE infer_cli_model_reload_attempts_total counter",
    ]
    for _, label, totals in each:
        lines += [
            f'infer_cli_model_reload_attempts_total{{model="{label}",outcome="{outcome}"}} '
            f"{totals.reloads[outcome]}"
            for outcome in RELOAD_OUTCOMES
        ]
    return lines


def _info(name: str, model: Model) -> str:
    """A model's info gauge: its name, SHA-256, path and version; a model from an MLflow
    registry is also named by its URI, registered name and the version the URI resolved to."""
    labels: dict[str, Any] = {
        "model": name,
        "sha256": model.card.sha256,
        "path": str(model.path),
    }
    registry = model.card.source.get("registry")
    if registry:
        labels |= {
            "model_uri": registry["uri"],
            "name": registry.get("name") or "",
            "version": model_version(model) if registry.get("version") is not None else "",
            "resolved": registry["resolved"],
        }
    else:
        labels["version"] = model_version(model)
    text = ",".join(f'{key}="{_label(str(value))}"' for key, value in labels.items())
    return f"infer_cli_model_info{{{text}}} 1"


def _histogram(
    name: str,
    help_text: str,
    labels: str,
    bounds: tuple[float, ...],
    counts: list[int],
    total: float,
    described: bool = True,
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"] if described else []
    prefix = f"{labels}," if labels else ""
    cumulative = 0
    for bound, count in zip(bounds, counts, strict=False):
        cumulative += count
        lines.append(f'{name}_bucket{{{prefix}le="{bound:g}"}} {cumulative}')
    cumulative += counts[-1]
    lines.append(f'{name}_bucket{{{prefix}le="+Inf"}} {cumulative}')
    suffix = f"{{{labels}}}" if labels else ""
    lines.append(f"{name}_sum{suffix} {total:g}")
    lines.append(f"{name}_count{suffix} {cumulative}")
    return lines
