"""`predict` from start to end: load the model, stream the input through the chosen engine,
and record the figures of the run, also when it fails, for the summary and --summary-json."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core import Model, is_model_uri, load_model, resolve_model_path
from ..errors import ExitCode, UsageError, exit_code_of
from ..tables import refuse_aliases, write_json
from ..timing import Stopwatch, peak_memory_mb
from .drift import drift_check, drift_figures
from .scoring import BatchScoring, Progress, ScoringOptions, ScoringReport

if TYPE_CHECKING:
    from .dask_engine import DaskScoring


def predict_figures(
    report: Any,
    *,
    model_load: float,
    scoring: float,
    wall: float,
    paths: dict[str, Any],
    error: BaseException | None = None,
    start_up: float | None = None,
) -> dict[str, Any]:
    """The figures of a `predict` run, for the summary table and `--summary-json`.

    `report` is the run's `ScoringReport`, or None when it failed before reading any data.
    Rows per second are over the scoring (reading, predicting and writing), not the model's
    load, which does not grow with the input.
    """
    status, exit_code, message = "ok", int(ExitCode.OK), None
    if isinstance(error, KeyboardInterrupt):
        status, exit_code, message = "interrupted", int(ExitCode.INTERRUPTED), "interrupted"
    elif isinstance(error, BrokenPipeError):
        status, exit_code = "failed", int(exit_code_of(error))
        message = "the reader of the output closed it before every row was written (broken pipe)"
    elif error is not None:
        status, exit_code = "failed", int(exit_code_of(error))
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
            "start_up": None if start_up is None else round(start_up, 4),
            "model_load": round(model_load, 4),
            "read": round(report.read_seconds if report else 0.0, 4),
            "predict": round(report.predict_seconds if report else 0.0, 4),
            "write": round(report.write_seconds if report else 0.0, 4),
            "scoring": round(scoring, 4),
            "wall": round(wall, 4),
        },
        # Over the scoring seconds as written above, so that the figures agree with each other.
        "rows_per_second": round(rows_read / round(scoring, 4)) if round(scoring, 4) else None,
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


@dataclass(frozen=True)
class PredictRun:
    """One `predict` invocation: what to score with which model, on which engine."""

    options: ScoringOptions
    model: str | None = None
    trust_types: list[str] | None = None
    engine: str = "single"
    """single: this process. dask: a Dask cluster, one partition per input file."""
    scheduler: str | None = None
    summary_json: str | None = None
    """Where the figures are also written, even when the run fails."""
    tracking_uri: str | None = None
    """The MLflow store a model URI is resolved in."""
    profile: str | None = None
    """The training profile to judge the input by, when not the model's own."""
    fail_on_drift: float | None = None
    """Exit with the drift code, the output complete, when a PSI exceeds this."""
    drift_report: str | None = None
    """Where the caller writes the drift's HTML page: checked with the other outputs."""


ProgressScope = Callable[[], AbstractContextManager[Progress | None]]


def run_predict(
    run: PredictRun,
    *,
    on_loaded: Callable[[Model], None] = lambda _: None,
    progress: ProgressScope = nullcontext,
) -> tuple[ScoringReport, dict[str, Any]]:
    """Load the model, score the input into the output, and return the run's report and
    figures. SIGTERM is taken as an interrupt while it runs, so that a stopped run removes
    its temporary files; a failed run still writes its figures to `summary_json`."""
    if run.engine == "dask":
        # Dask's engine is imported only for it: a run of a few rows on one process is
        # mostly imports.
        from .dask_engine import DaskScoring, find_partitions, require_dask

        require_dask()
    elif run.scheduler is not None:
        raise UsageError("--scheduler is for --engine dask")
    # Before anything is read or written: a summary written over the input is data lost.
    options = run.options
    inputs = find_partitions(options.input) if run.engine == "dask" else [options.input]
    by_uri = bool(run.model and is_model_uri(run.model))
    refuse_aliases(
        [("--input", name) for name in inputs],
        [("--output", options.output), ("--rejects", options.rejects),
         ("--summary-json", run.summary_json), ("--drift-report", run.drift_report)],
        inside=[] if by_uri else [("--model", resolve_model_path(run.model))],
    )  # fmt: skip
    paths: dict[str, Any] = {
        "model": run.model,
        "input": run.options.input,
        "output": run.options.output,
        "rejects": run.options.rejects,
    }
    if by_uri:
        paths.update(model_uri=run.model, model_version=None)
    stopwatch = Stopwatch()
    job: BatchScoring | DaskScoring | None = None
    try:
        with _sigterm_as_interrupt():
            with stopwatch.phase("model load"):
                model = load_model(
                    run.model, trust_types=run.trust_types, tracking_uri=run.tracking_uri
                )
            paths["model"] = str(model.path)
            if "registry" in model.card.source:
                # A cron job's log says which version scored the file, not only the alias.
                paths["model_version"] = model.card.source["registry"]["version"]
            check = drift_check(model, run.profile, run.fail_on_drift)
            on_loaded(model)
            bins = check.bins if check else None
            if run.engine == "dask":
                job = DaskScoring(model, run.options, run.scheduler, bins)
            else:
                job = BatchScoring(model, run.options, bins)
            with progress() as on_progress, stopwatch.phase("scoring"):
                report = job.run(on_progress)
    except BaseException as exc:
        if run.summary_json:
            figures = predict_figures(
                job.report if job else None,
                model_load=stopwatch.phases.get("model load", 0.0),
                scoring=stopwatch.phases.get("scoring", 0.0),
                wall=stopwatch.elapsed(),
                paths=paths,
                error=exc,
                start_up=stopwatch.start_up,
            )
            write_json(run.summary_json, figures)
        raise
    figures = predict_figures(
        report, model_load=stopwatch.phases["model load"], scoring=stopwatch.phases["scoring"],
        wall=stopwatch.elapsed(), paths=paths, start_up=stopwatch.start_up,
    )  # fmt: skip
    figures.update(drift_figures(check, report.drift))
    if run.summary_json:
        write_json(run.summary_json, figures)
    return report, figures


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while the block runs, so that cleanup (temporary output
    files) happens before the process exits."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an in-process test runner, say)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
