"""What `infer-cli serve` prints on stderr: the start-up banner and the summary at shutdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console

from .console import key_value_table

if TYPE_CHECKING:
    from ..core.model import Model
    from ..serve.options import ServeOptions
    from ..serve.process import LoadedModel, ServeConfig, ServeSummary

MIB = 1024 * 1024


def render_banner(
    console: Console,
    model: Model,
    config: ServeConfig,
    seconds: float,
    loaded: Sequence[LoadedModel] = (),
) -> None:
    """Model (or each model), signature, address, workers and limits, once the server
    answers; what loading each model cost, when `loaded` says."""
    options = config.options
    scheme = "https" if options.tls_cert else "http"
    if len(loaded) > 1:
        title = f"Serving {len(loaded)} models"
        served = _models_rows(loaded)
    else:
        title = f"Serving {model.path}"
        served = _model_rows(model, loaded[0] if loaded else None)
    rows = [
        ("address", f"{scheme}://{config.host}:{config.port}/invocations"),
        *served,
        ("workers", f"{config.workers} process(es), one event loop each"),
        (
            "batching",
            f"up to {options.max_batch_rows} rows, waiting at most "
            f"{options.max_batch_delay * 1000:g} ms for requests already arriving",
        ),
        (
            "limits",
            f"body {options.max_body_bytes:,} bytes, {options.max_rows:,} rows, "
            f"{options.max_columns:,} columns, read {options.read_timeout:g} s, "
            f"request {options.request_timeout:g} s",
        ),
        ("auth", _auth(options)),
        ("reload", "on SIGHUP" + (_watched(config) if config.reload else "")),
        *_log_rows(options),
        *_decision_rows(model, config),
        ("ready in", f"{seconds:.2f} s"),
    ]
    console.print(key_value_table(title, rows, justify="left"))
    if not config.loopback_only and not options.authenticated:
        console.print(
            f"[yellow]warning:[/] listening on {config.host or 'every interface'} with no auth "
            "token: anyone who can reach this port can use the model. Bind 127.0.0.1 behind a "
            "proxy that authenticates clients, or keep the port closed to other machines.",
            soft_wrap=True,
        )
    for each in [entry.model for entry in loaded] if len(loaded) > 1 else [model]:
        for notice in each.notices:
            console.print(f"[yellow]note:[/] {notice}", soft_wrap=True)


def _model_rows(model: Model, loaded: LoadedModel | None) -> list[tuple[str, str]]:
    """The one model served: its registry entry, task, hash, signature and load."""
    registry = model.card.source.get("registry")
    named = []
    if registry:
        where = f"{registry['store']} {registry['tracking_uri']}"
        named = [("model URI", f"{registry['uri']}: {registry['resolved']}, from {where}")]
    inputs = ", ".join(f"{column.name}: {column.dtype}" for column in model.signature.inputs)
    rows = [
        *named,
        ("model", f"{_task(model)}, sha256 {model.card.sha256[:12]}"),
        ("signature", inputs),
    ]
    if loaded is not None:
        rows.append(("loaded", _load(loaded, first=True)))
    return rows


def _models_rows(loaded: Sequence[LoadedModel]) -> list[tuple[str, str]]:
    """A row per model: its name and route, where it came from, what it is, its load."""
    rows = []
    for index, entry in enumerate(loaded):
        model = entry.model
        registry = model.card.source.get("registry")
        source = f"{registry['uri']}: {registry['resolved']}" if registry else str(model.path)
        route = "/invocations, " if index == 0 else ""
        rows.append(
            (
                f"{entry.name}{' (default)' if index == 0 else ''}",
                f"{route}/models/{entry.name}/invocations from {source}; {_task(model)}, "
                f"{len(model.signature.inputs)} input columns, sha256 "
                f"{model.card.sha256[:12]}; {_load(entry, first=index == 0)}",
            )
        )
    return rows


def _task(model: Model) -> str:
    task = model.card.task
    if model.card.classes:
        task += f" ({', '.join(str(label) for label in model.card.classes)})"
    return task


def _load(entry: LoadedModel, first: bool) -> str:
    """Its load time and the resident memory it added; the first model's includes the
    libraries its load imported (scikit-learn, pandas), which the others share."""
    text = f"in {entry.seconds:.2f} s"
    if entry.resident_bytes is not None:
        text += f", +{entry.resident_bytes / MIB:.1f} MiB resident"
        if first:
            text += " (libraries it imported included)"
    return text


def _auth(options: ServeOptions) -> str:
    """How clients authenticate; the tokens themselves are never shown."""
    if not options.authenticated:
        return "none: every client may score"
    sources = (
        [f"{options.auth_token_file} (read again on SIGHUP)"] if options.auth_token_file else []
    )
    if options.auth_token and options.auth_token.strip():
        sources.append("$INFER_CLI_AUTH_TOKEN")
    return (
        "bearer token from " + " and ".join(sources) + "; /ping, /health and /v2/health/live open"
    )


def _log_rows(options: ServeOptions) -> list[tuple[str, str]]:
    """Where the prediction log goes, and when its files are made whole."""
    if not options.log_predictions:
        return []
    return [
        (
            "prediction log",
            f"{options.log_predictions} ({options.log_format}), a file made whole every "
            f"{options.log_rotate_mb:g} MiB or {options.log_rotate_seconds:g} s; rows beyond "
            f"{options.log_queue_rows:,} waiting are dropped and counted",
        )
    ]


def _watched(config: ServeConfig) -> str:
    if config.model_uri:
        from ..serve.process import REGISTRY_POLL_SECONDS

        every = config.reload_interval or REGISTRY_POLL_SECONDS
        return f" and when the registry moves {config.model_uri} (asked every {every:g} s)"
    return " and when the model changes"


def _decision_rows(model: Model, config: ServeConfig) -> list[tuple[str, str]]:
    """For a binary classifier, the threshold labels are given at and how a request sets one."""
    if not model.can_predict_proba or len(model.card.classes or []) != 2:
        return []
    decision = model.decision(config.options.threshold, origin="serve --threshold")
    rule = decision.describe() if decision else "the model's own labels"
    return [("threshold", f"{rule}; a request may set its own (params.threshold)")]


def render_summary(console: Console, summary: ServeSummary) -> None:
    """Requests, errors, batches, mean batch size and latency percentiles."""
    stats = summary.stats
    statuses = ", ".join(f"{code}: {stats.statuses[code]:,}" for code in sorted(stats.statuses))
    rows = [
        ("uptime", f"{summary.seconds:.1f} s"),
        ("requests", f"{stats.requests:,}" + (f"  ({statuses})" if statuses else "")),
        ("errors (4xx/5xx)", f"{stats.errors:,}"),
        ("model calls (batches)", f"{stats.batches:,}"),
        ("mean rows per batch", f"{stats.mean_batch_rows:.2f}"),
        ("latency p50", _ms(stats.percentile(0.50)) if stats.requests else "-"),
        ("latency p95", _ms(stats.percentile(0.95)) if stats.requests else "-"),
        ("latency p99", _ms(stats.percentile(0.99)) if stats.requests else "-"),
    ]
    if stats.reloads:
        rows.append(("reloads", f"{stats.reloads['ok']} ok, {stats.reloads['failed']} failed"))
    if stats.log_enabled:
        logged = stats.log_rows
        rows.append(
            (
                "prediction log",
                f"{logged['written']:,} rows in {logged['files']:,} files, "
                f"{logged['dropped']:,} dropped",
            )
        )
    console.print(key_value_table("Server stopped", rows))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"
