"""The command line: options, help text, and the one place errors become exit codes.

Heavy libraries (pandas, scikit-learn) are imported inside the commands, so that
`infer-cli --help` answers at once.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from contextlib import suppress
from typing import Annotated, Any, TypeVar

import typer

from . import __version__
from .errors import ExitCode, InferError
from .tables import DEFAULT_BATCH_ROWS, MAX_COLUMNS

app = typer.Typer(
    name="infer-cli",
    help="Train, score and serve scikit-learn models from the command line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Command = TypeVar("Command", bound=Callable[..., Any])
# Commands whose process has nothing left to clean up once they succeed (see `main`).
QUICK_EXIT_COMMANDS = frozenset({"predict"})

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        # Square brackets in help text are rich markup: the default goes in show_default.
        help="Model directory, a bare .joblib/.pkl file, or an MLflow model URI: "
        "models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/STAGE, models:/NAME/latest, "
        "models:/MODEL_ID, runs:/RUN_ID/PATH.",
        show_default="$INFER_CLI_MODEL or ./model",
    ),
]
TrackingUriOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="The MLflow store a models:/ or runs:/ URI is resolved in: sqlite:///PATH, a "
        "file store directory, or a tracking server's http(s):// URL. "
        "[default: $MLFLOW_TRACKING_URI, else ./mlruns if it holds runs, else sqlite:///mlflow.db]",
        show_default=False,
    ),
]
TrustTypesOption = Annotated[
    str | None,
    typer.Option(
        "--trust-types",
        help=(
            "Also load these types from a skops model, comma-separated: only for a model "
            "whose source you trust. [default: $INFER_CLI_TRUST_TYPES]"
        ),
        show_default=False,
    ),
]
MaxColumnsOption = Annotated[
    int,
    typer.Option(
        "--max-columns",
        help="Refuse a table of more columns than this (exit code 3), before reading its rows.",
    ),
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="The training profile to judge input by. "
        "[default: profile.json beside the model, else the one in its card]",
        show_default=False,
    ),
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]


def _fail(message: str, code: int, debug: bool) -> typer.Exit:
    if debug:
        traceback.print_exc()
    print(f"infer-cli: error: {message}", file=sys.stderr)
    return typer.Exit(code)


def reporting_errors(command: Command) -> Command:
    """Turn the errors a command raises into one line on stderr and an exit code."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug", False))
        try:
            return command(*args, **kwargs)
        except InferError as exc:
            raise _fail(exc.message, exc.exit_code, debug) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", ExitCode.INTERRUPTED, debug) from None
        except BrokenPipeError:
            # The reader of our stdout went away (`| head`): not an error worth a message.
            sys.stderr.close()
            raise typer.Exit(ExitCode.OK) from None
        except MemoryError:
            raise _fail(
                "out of memory (try a smaller --batch-size)", ExitCode.DATA, debug
            ) from None
        except Exception as exc:
            hint = "" if debug else " (run with --debug for the traceback)"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise _fail(f"internal error: {reason}{hint}", ExitCode.INTERNAL, debug) from None

    return run  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        print(f"infer-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Train, score and serve scikit-learn models from the command line."""


@app.command()
@reporting_errors
def train(
    input: Annotated[str, typer.Option("--input", "-i", help="Training CSV (- for stdin).")],
    target: Annotated[str, typer.Option("--target", "-t", help="Column to predict.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Directory to save the model in.")
    ] = "model",
    model: Annotated[
        str, typer.Option("--model", help="auto, logistic, forest, gbm, linear or ridge.")
    ] = "auto",
    task: Annotated[
        str, typer.Option("--task", help="auto, classification or regression.")
    ] = "auto",
    test_size: Annotated[
        float, typer.Option("--test-size", help="Share of rows held out for the metrics.")
    ] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the split.")] = 0,
    text_column: Annotated[
        list[str] | None,
        typer.Option("--text-column", help="Treat this column as free text (repeatable)."),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option("--ignore", help="Leave these columns out of the model (comma-separated)."),
    ] = None,
    file_format: Annotated[
        str,
        typer.Option(
            "--format", help="Model file: joblib, or skops (cannot run code when loaded)."
        ),
    ] = "joblib",
    max_columns: MaxColumnsOption = MAX_COLUMNS,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Train a scikit-learn Pipeline on a CSV and save it with its metrics."""
    from .core import MODEL_FILES, check_model_destination, save_model
    from .errors import UsageError
    from .report import render_notices, render_train_report, stderr_console
    from .tables import read_table
    from .timing import Stopwatch
    from .training import MODEL_CHOICES, TASK_CHOICES, TrainOptions
    from .training import train as fit

    _check_choice("--model", model, MODEL_CHOICES, UsageError)
    _check_choice("--task", task, TASK_CHOICES, UsageError)
    _check_choice("--format", file_format, tuple(MODEL_FILES), UsageError)
    # Before training, not after minutes of it.
    check_model_destination(output)
    console = stderr_console(quiet)
    stopwatch = Stopwatch()
    with stopwatch.phase("read"):
        frame = read_table(input, max_columns=max_columns)
    options = TrainOptions(
        target=target,
        model=model,
        task=task,
        test_size=test_size,
        seed=seed,
        text_columns=tuple(_split_names(text_column)),
        ignore=tuple(_split_names(ignore)),
    )
    with stopwatch.phase("train"):
        result = fit(frame, options)
    with stopwatch.phase("save"):
        save_model(result.estimator, result.card, output, serialization=file_format)
    render_notices(console, result.notices)
    render_train_report(console, result, output, stopwatch)


@app.command()
@reporting_errors
def predict(
    model: ModelOption = None,
    input: Annotated[
        str,
        typer.Option("--input", "-i", help="Rows to score: CSV, .csv.gz or Parquet (- for stdin)."),
    ] = "-",
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Where to write them: CSV, .csv.gz, Parquet or .jsonl (- for stdout).",
        ),
    ] = "-",
    proba: Annotated[
        bool, typer.Option("--proba", help="Add a proba_<class> column per class.")
    ] = False,
    keep: Annotated[
        str | None,
        typer.Option(
            "--keep",
            help="Input columns to write beside the predictions (comma-separated), or none.",
            show_default="all",
        ),
    ] = None,
    input_format: Annotated[
        str | None,
        typer.Option(
            "--input-format",
            help="csv, csv.gz or parquet.",
            show_default="from the extension, else csv",
        ),
    ] = None,
    output_format: Annotated[
        str | None,
        typer.Option(
            "--output-format",
            help="csv, csv.gz, parquet, jsonl, or mlflow-json (the predictions document "
            "`mlflow models predict` writes).",
            show_default="from the extension, else csv",
        ),
    ] = None,
    delimiter: Annotated[
        str, typer.Option("--delimiter", help="CSV field separator, in and out (\\t for tab).")
    ] = ",",
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Rows read, scored and written at a time.")
    ] = DEFAULT_BATCH_ROWS,
    on_bad_rows: Annotated[
        str,
        typer.Option(
            "--on-bad-rows",
            help="fail: stop at the first bad row, writing nothing. "
            "skip: write bad rows to --rejects and score the others.",
        ),
    ] = "fail",
    rejects: Annotated[
        str | None,
        typer.Option(
            "--rejects",
            help="File for the rows --on-bad-rows skip sets aside, with a reject_reason column.",
            show_default=False,
        ),
    ] = None,
    summary_json: Annotated[
        str | None,
        typer.Option(
            "--summary-json",
            help="Also write the summary figures to this JSON file, even when the run fails.",
            show_default=False,
        ),
    ] = None,
    fail_on_drift: Annotated[
        float | None,
        typer.Option(
            "--fail-on-drift",
            metavar="PSI",
            min=0,
            help="Exit with code 5, the output still complete, when a column's or the "
            "predictions' PSI against the training profile exceeds this (0.25: a shift).",
            show_default=False,
        ),
    ] = None,
    drift_report: Annotated[
        str | None,
        typer.Option(
            "--drift-report",
            help="Also write an HTML page of the drift: a chart per drifting column.",
            show_default=False,
        ),
    ] = None,
    profile: ProfileOption = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="single: this process. dask: a Dask cluster, -i a glob or directory of files "
            "(one partition each), -o and --rejects directories of parts with a _SUCCESS marker.",
        ),
    ] = "single",
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="--engine dask: a running scheduler (tcp://HOST:PORT). "
            "[default: a local cluster, a worker per core]",
            show_default=False,
        ),
    ] = None,
    max_columns: MaxColumnsOption = MAX_COLUMNS,
    tracking_uri: TrackingUriOption = None,
    trust_types: TrustTypesOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Score a file or a stream: the input rows with a prediction column appended, in chunks."""
    from .batch import PredictRun, ScoringOptions, run_predict
    from .errors import DriftDetected, UsageError
    from .report import (
        predict_progress,
        render_notices,
        render_predict_summary,
        stderr_console,
        write_drift_report,
    )
    from .tables import check_delimiter

    _check_choice("--on-bad-rows", on_bad_rows, ("fail", "skip"), UsageError)
    _check_choice("--engine", engine, ("single", "dask"), UsageError)
    if input == "-" and sys.stdin.isatty():
        raise UsageError("no input: give a file with -i, or pipe rows in (cat new.csv | ...)")
    kept = None if keep is None else tuple(n for n in _split_names([keep]) if n != "none")
    options = ScoringOptions(
        input=input,
        output=output,
        input_format=input_format,
        output_format=output_format,
        delimiter=check_delimiter(delimiter),
        batch_size=batch_size,
        proba=proba,
        keep=kept,
        skip_bad_rows=on_bad_rows == "skip",
        rejects=rejects,
        max_columns=max_columns,
    )
    console = stderr_console(quiet)
    run = PredictRun(
        options, model, _names(trust_types), engine, scheduler, summary_json, tracking_uri,
        profile, fail_on_drift, drift_report,
    )  # fmt: skip
    report, figures = run_predict(
        run,
        on_loaded=lambda loaded: render_notices(console, loaded.notices),
        progress=lambda: predict_progress(console),
    )
    render_notices(console, report.notices)
    if drift_report:
        write_drift_report(drift_report, figures)
    render_predict_summary(console, figures)
    if figures["exit_code"] == ExitCode.DRIFT:
        raise DriftDetected(figures["error"])


@app.command()
@reporting_errors
def profile(
    input: Annotated[
        str, typer.Option("--input", "-i", help="The model's training data: CSV or Parquet.")
    ],
    model: ModelOption = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Where to write it. [default: profile.json in the model's directory, "
            "NAME.profile.json beside a bare file]",
            show_default=False,
        ),
    ] = None,
    tracking_uri: TrackingUriOption = None,
    trust_types: TrustTypesOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Add a training profile to a model that has none, so predict and serve check drift."""
    from .batch import write_training_profile
    from .report import render_notices, render_profile_written, stderr_console

    console = stderr_console(quiet)
    written = write_training_profile(
        model, input, profile, trust_types=_names(trust_types), tracking_uri=tracking_uri
    )
    render_notices(console, written.model.notices)
    render_profile_written(console, written)


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the report as JSON on stdout instead.")
]


@app.command()
@reporting_errors
def info(
    model: ModelOption = None,
    json: JsonOption = False,
    tracking_uri: TrackingUriOption = None,
    trust_types: TrustTypesOption = None,
    debug: DebugOption = False,
) -> None:
    """Show the model card: origin, task, signature, metrics, versions, format and integrity."""
    from .core import check_loadable, inspect_model
    from .report import inspection_json, render_model_card, stderr_console

    inspection = inspect_model(model, trust_types=_names(trust_types), tracking_uri=tracking_uri)
    if json:
        _print_json(inspection_json(inspection))
    else:
        render_model_card(stderr_console(), inspection)
    check_loadable(inspection)


@app.command()
@reporting_errors
def evaluate(
    input: Annotated[str, typer.Option("--input", "-i", help="Labelled rows (- for stdin).")],
    model: ModelOption = None,
    target: Annotated[
        str | None,
        typer.Option("--target", "-t", help="Column of true labels. [default: the model's target]"),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Binary models: probability of the positive class from which a row is "
            "predicted positive. [default: 0.5]",
        ),
    ] = None,
    delimiter: Annotated[str, typer.Option("--delimiter", help="CSV field separator.")] = ",",
    json: JsonOption = False,
    max_columns: MaxColumnsOption = MAX_COLUMNS,
    tracking_uri: TrackingUriOption = None,
    trust_types: TrustTypesOption = None,
    debug: DebugOption = False,
) -> None:
    """Measure a model's quality on a labelled file, streamed as predict streams it."""
    from .batch import evaluate as measure
    from .batch import read_labelled
    from .core import load_model
    from .report import render_evaluation, render_notices, stderr_console

    console = stderr_console()
    loaded = load_model(model, trust_types=_names(trust_types), tracking_uri=tracking_uri)
    render_notices(console, loaded.notices)
    chunks = read_labelled(input, loaded, target, delimiter=delimiter, max_columns=max_columns)
    evaluation = measure(loaded, chunks, target=target, threshold=threshold)
    render_notices(console, evaluation.notices)
    if json:
        _print_json(evaluation.to_json())
    else:
        render_evaluation(console, evaluation)


@app.command()
@reporting_errors
def bench(
    model: ModelOption = None,
    input: Annotated[
        str | None,
        typer.Option("--input", "-i", help="Rows to score. [default: the model's example rows]"),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Also load-test a running server, e.g. http://127.0.0.1:5000."),
    ] = None,
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Largest batch size to measure.", min=1)
    ] = 100_000,
    concurrency: Annotated[
        str, typer.Option("--concurrency", help="Connection counts for --url, comma-separated.")
    ] = "1,4,16,64",
    seconds: Annotated[
        float, typer.Option("--seconds", help="Time spent on each measurement.", min=0.05)
    ] = 1.0,
    json: JsonOption = False,
    tracking_uri: TrackingUriOption = None,
    trust_types: TrustTypesOption = None,
    debug: DebugOption = False,
) -> None:
    """Measure batch throughput, single-row latency and, with --url, a server under load."""
    from .benchmarking import run_bench
    from .core import load_model
    from .errors import UsageError
    from .loadgen import Target
    from .report import render_bench, render_notices, stderr_console
    from .tables import read_table

    levels = tuple(int(level) for level in _split_names([concurrency]) if level.isdigit())
    if url and (not levels or min(levels) < 1):
        raise UsageError(f"--concurrency must be positive whole numbers, not '{concurrency}'")
    if url:
        Target.parse(url, "/invocations")
    console = stderr_console()
    loaded = load_model(model, trust_types=_names(trust_types), tracking_uri=tracking_uri)
    render_notices(console, loaded.notices)
    table = read_table(input) if input else None
    with console.status("measuring") as status:
        report = run_bench(
            loaded, table, table_name=input, max_batch=max_batch, seconds=seconds,
            url=url, levels=levels, on_progress=status.update,
        )  # fmt: skip
    if json:
        _print_json(report.to_json())
    else:
        render_bench(console, report)


@app.command()
@reporting_errors
def serve(
    model: ModelOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 5000,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Processes sharing the socket.")
    ] = 1,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=1, help="Most rows scored in one model call.")
    ] = 64,
    max_batch_delay_ms: Annotated[
        float,
        typer.Option(
            "--max-batch-delay-ms",
            min=0,
            help="Longest a batch waits for requests already arriving (a lone one never waits).",
        ),
    ] = 2.0,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.001, help="Seconds per prediction before a 504.")
    ] = 30.0,
    read_timeout: Annotated[
        float,
        typer.Option("--read-timeout", min=0.001, help="Seconds a client may take to send."),
    ] = 10.0,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", min=0, help="Largest request body, in MiB (413).")
    ] = 64.0,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, help="Most rows in one request (413).")
    ] = 1_000_000,
    max_columns: Annotated[
        int, typer.Option("--max-columns", min=1, help="Most columns in one request (413).")
    ] = 10_000,
    reload: Annotated[
        bool,
        typer.Option(
            "--reload",
            help="Reload the model when its files change or, for a models:/ URI, when the "
            "registry moves its alias or stage to another version.",
        ),
    ] = False,
    reload_interval: Annotated[
        float | None,
        typer.Option(
            "--reload-interval",
            min=0.05,
            help="Seconds between two looks for a new model with --reload. "
            "[default: 1 for files, 10 for a model URI's registry]",
            show_default=False,
        ),
    ] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log one line per request.")
    ] = True,
    tracking_uri: TrackingUriOption = None,
    trust_types: TrustTypesOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Serve the model over HTTP: MLflow's /invocations and the V2 inference protocol."""
    import os
    from pathlib import Path

    from .serve.quick_start import quick_start

    # One-row predictions gain nothing from BLAS threads, and workers share the cores.
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    with quick_start() as loaded:
        from rich.console import Console

        from .core import is_registry_uri, model_reference, resolve_model_path, resolve_trust_types
        from .report import render_banner, render_summary
        from .serve import ServeConfig, ServeOptions
        from .serve import serve as run

        # Not summary.stderr_console: that module imports pandas before the socket is bound.
        console = Console(stderr=True, quiet=quiet, highlight=False)
        options = ServeOptions(
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            max_rows=max_rows,
            max_columns=max_columns,
            request_timeout=timeout,
            read_timeout=read_timeout,
            max_batch_rows=max_batch_size,
            max_batch_delay=max_batch_delay_ms / 1000,
            access_log=access_log and not quiet,
        )
        reference = model_reference(model)
        registered = is_registry_uri(reference)
        path = Path(reference) if registered else resolve_model_path(reference)
        config = ServeConfig(
            path, host, port, workers, reload, options,
            trust_types=resolve_trust_types(_names(trust_types)),
            model_uri=reference if registered else None,
            tracking_uri=tracking_uri, reload_interval=reload_interval,
        )  # fmt: skip

        def ready(*announced: Any) -> None:
            loaded()
            render_banner(console, *announced)

        summary = run(config, ready)
    render_summary(console, summary)


def _print_json(document: object) -> None:
    import json

    print(json.dumps(document, indent=2))


def _check_choice(flag: str, value: str, choices: tuple[str, ...], error: type[InferError]) -> None:
    if value not in choices:
        raise error(f"{flag} must be one of: {', '.join(choices)} (got '{value}')")


def _split_names(values: list[str] | None) -> list[str]:
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def _names(value: str | None) -> list[str] | None:
    """A comma-separated option's names, or None when it was not given."""
    return _split_names([value]) if value is not None else None


def main() -> None:
    """The console script.

    After a successful `predict`, the process ends without the interpreter's tear-down of
    every module: its files are complete and closed by then, and the tear-down of
    scikit-learn, pandas and pyarrow costs about 0.35 s (measured), a tenth of scoring a
    million rows.
    """
    try:
        app()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        # After a failure, the usual tear-down also finalizes whatever the error left.
        if code != 0 or _command(sys.argv[1:]) not in QUICK_EXIT_COMMANDS:
            raise
        for stream in (sys.stdout, sys.stderr):
            with suppress(OSError, ValueError):  # a closed pipe has nothing left to take
                stream.flush()
        os._exit(code)


def _command(arguments: list[str]) -> str | None:
    """The command named on the command line (the root takes no option with a value)."""
    return next((argument for argument in arguments if not argument.startswith("-")), None)
