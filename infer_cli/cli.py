"""The command line: options, help with examples, and the one place where errors, usage
errors included, become an exit code and one line on stderr.

Each command declares its options and calls one engine. Heavy libraries (pandas,
scikit-learn) are imported inside the commands, so that `infer-cli --help` answers at once.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import typer
from typer._click import Context
from typer._click import exceptions as click_errors
from typer._coercion import RuntimeParam
from typer._param_types import coerce_cli_choice
from typer.core import TyperGroup

from . import __version__
from .choices import (
    ALGORITHMS,
    BAD_ROWS,
    ENGINES,
    INPUT_FORMATS,
    LOG_FORMATS,
    MODEL_FORMATS,
    OUTPUT_FORMATS,
    TASKS,
    Algorithm,
    BadRows,
    Engine,
    InputFormat,
    LogFormat,
    ModelFormat,
    OutputFormat,
    Task,
    listed,
)
from .errors import ExitCode, InferError, UsageError, exit_code_of, printable
from .tables.limits import DEFAULT_BATCH_ROWS, MAX_COLUMNS
from .timing import count_from_process_start

Command = TypeVar("Command", bound=Callable[..., Any])
HELP_OPTIONS = ["-h", "--help"]
# Commands whose process has nothing left to clean up once they succeed (see `main`).
QUICK_EXIT_COMMANDS = frozenset({"predict"})
BLAS_SPIN_STEPS = "4"
"""OpenBLAS's shortest spin before an idle thread sleeps (2**4 cycles; its default is 2**28)."""


class _Commands(TyperGroup):
    """The command group, whose usage errors (an unknown option, a missing value) are one
    line on stderr like every other error, with click's suggestion kept in it."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        _read_values_without_pydantic(self)
        run = functools.partial(
            super().main, args, prog_name, complete_var, False, windows_expand_args, **extra
        )
        if not standalone_mode:
            return run()
        try:
            code = run()
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            print(f"infer-cli: error: {_usage_message(exc)}", file=sys.stderr)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else ExitCode.OK)


@dataclass(frozen=True)
class _PlainValues(RuntimeParam):
    """A string, number or choice (or a list of them) read as Typer reads it, without the
    pydantic model Typer builds for it: importing pydantic cost a one-row `predict` (and
    `serve`'s start) 0.15 s."""

    read: Callable[[Any], Any]

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            if isinstance(value, (list, tuple)):
                return [self.read(item) for item in value]
            return self.read(value)
        except ValueError as exc:
            raise click_errors.BadParameter(str(exc), ctx=ctx, param=param) from None


def _read_values_without_pydantic(group: TyperGroup) -> None:
    """Give each option whose value is a string, a number or a choice a reader of its own;
    any other (and any option of a Typer that reads them otherwise) is left to Typer."""
    for command in [group, *group.commands.values()]:
        # The help option is made when first asked for: made here, it is read here too.
        help_option = command.get_help_option(Context(command, help_option_names=HELP_OPTIONS))
        for param in [*command.params, *([help_option] if help_option else [])]:
            descriptor = getattr(param, "type_descriptor", None)
            if descriptor is None or getattr(param, "_runtime_param", False) is not None:
                continue
            read = _reader(descriptor.annotation)
            if read is not None:
                param._runtime_param = _PlainValues(  # type: ignore[attr-defined]
                    descriptor.parameter_info, descriptor.annotation, read
                )


def _reader(annotation: Any) -> Callable[[Any], Any] | None:
    arguments = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(arguments) == 1:
        return _reader(arguments[0])
    if get_origin(annotation) is list and len(arguments) == 1:
        return _reader(arguments[0])
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        return lambda value: coerce_cli_choice(value, choices=choices, case_sensitive=True)
    readers: dict[Any, Callable[[Any], Any]] = {
        str: str, int: _whole_number, float: _number, bool: _flag
    }  # fmt: skip
    return readers.get(annotation)


# As pydantic reads a whole number: spaces around, underscores between digits, `7.0`.
_WHOLE_NUMBER = re.compile(r"\s*([+-]?[0-9]+(?:_[0-9]+)*)(?:\.0*)?\s*")


def _whole_number(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    matched = _WHOLE_NUMBER.fullmatch(str(value))
    if matched is None:
        raise ValueError("expected a whole number")
    return int(matched.group(1))


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("1", "true", "t", "yes", "y", "on"):
        return True
    if word in ("0", "false", "f", "no", "n", "off"):
        return False
    raise ValueError("expected true or false")


def _number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not str(value).isascii():  # float() reads other scripts' digits; pydantic does not
        raise ValueError("expected a number")
    try:
        return float(value)
    except ValueError:
        raise ValueError("expected a number") from None


def _usage_message(exc: click_errors.ClickException) -> str:
    """Click's message on one line, in the voice of the others: 'no such option: --thresold
    (did you mean --threshold?)'."""
    if isinstance(exc, click_errors.NoSuchOption):
        return _no_such_option(exc)
    text = exc.format_message().replace("Value error, ", "")
    # Typer's own wording for a value of the wrong type.
    text = re.sub(r"Input should be a valid integer.*", "expected a whole number", text)
    text = re.sub(r"Input should be a valid number.*", "expected a number", text)
    text = re.sub(r"\. Did you mean (.*)\?$", r" (did you mean \1?)", text)
    return (text[:1].lower() + text[1:]).rstrip(".")


def _no_such_option(exc: click_errors.NoSuchOption) -> str:
    command = exc.ctx.command if exc.ctx is not None else None
    message = f"no such option: {exc.option_name}"
    if command is not None and exc.ctx is not None and exc.ctx.parent is not None:
        message = f"{exc.ctx.info_name} has no option {exc.option_name}"
        group = exc.ctx.parent.command
        others = [
            name
            for name, other in getattr(group, "commands", {}).items()
            if any(exc.option_name in param.opts for param in other.params)
        ]
        if others:
            verb = "takes" if len(others) == 1 else "take"
            return f"{message} ({' and '.join(sorted(others))} {verb} it)"
    # difflib finds --help close to any option that starts with two dashes.
    likely = [name for name in exc.possibilities or () if name not in ("--help", "-h")]
    if likely:
        return f"{message} (did you mean {' or '.join(likely)}?)"
    return message


app = typer.Typer(
    name="infer-cli",
    help="Train, score and serve scikit-learn models from the command line.",
    cls=_Commands,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": HELP_OPTIONS, "max_content_width": 80},
    epilog="""Examples:

\b
  infer-cli train -i sample_data/iris.csv --target species -o iris
  infer-cli predict -m iris -i sample_data/iris_new.csv -o scored.csv
  infer-cli serve -m iris --port 5000

`infer-cli COMMAND --help` shows each command's options and examples.""",
)


def _examples(*lines: str) -> str:
    """A help page's Examples block, its lines kept as written."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


def _option(
    names: str,
    metavar: str | None,
    help: str,
    *,
    default: str | None = None,
    at_least: float | None = None,
    **settings: Any,
) -> Any:
    """An option: its names (space-separated), the metavar that names its value (None for a
    flag), its help, and the default in words where the value itself would mislead."""
    if default is not None:
        help = f"{help}  [default: {default}]"
        settings["show_default"] = False
    if at_least is not None:
        settings["callback"] = _at_least(at_least)
    return typer.Option(*names.split(), metavar=metavar, help=help, **settings)


def _at_least(floor: float) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is not None and value < floor:
            raise typer.BadParameter(f"must be at least {floor:g} (got {value:g})")
        return value

    return check


def _port_number(value: Any) -> Any:
    if value is not None and not 0 <= value <= 65535:
        raise typer.BadParameter(f"must be between 0 and 65535 (got {value})")
    return value


def _positive(value: Any) -> Any:
    if value is not None and value <= 0:
        raise typer.BadParameter(f"must be more than 0 (got {value:g})")
    return value


ModelOption = Annotated[
    str | None,
    _option(
        "--model -m",
        "PATH",
        "Model directory, bare .joblib/.pkl file, or MLflow model URI (models:/NAME/VERSION, "
        "models:/NAME@ALIAS, models:/NAME/STAGE, models:/NAME/latest, models:/MODEL_ID, "
        "runs:/RUN_ID/PATH).",
        default="$INFER_CLI_MODEL, else ./model",
    ),
]
TrackingUriOption = Annotated[
    str | None,
    _option(
        "--tracking-uri",
        "URI",
        "The MLflow store a models:/ or runs:/ URI is resolved in: sqlite:///PATH, a file "
        "store directory, or a tracking server's http(s):// URL.",
        default="$MLFLOW_TRACKING_URI, else ./mlruns if it holds runs, else sqlite:///mlflow.db",
    ),
]
ThresholdOption = Annotated[
    float | None,
    _option(
        "--threshold",
        "P",
        "Binary classifiers: label a row with the positive class where its probability is "
        "at least P, in (0, 1).",
        default="the one saved by evaluate --save, else the model's own labels",
    ),
]
PositiveClassOption = Annotated[
    str | None,
    _option(
        "--positive-class",
        "LABEL",
        "The class --threshold applies to.",
        default="the saved threshold's, else the model's second class",
    ),
]
TrustTypesOption = Annotated[
    list[str] | None,
    _option(
        "--trust-types",
        "TYPES",
        "Also load these types from a skops model, separated by commas (repeatable): only "
        "for a model whose source you trust.",
        default="$INFER_CLI_TRUST_TYPES",
    ),
]
InputFormatOption = Annotated[
    InputFormat | None,
    _option(
        "--input-format",
        listed(INPUT_FORMATS),
        "Format of the input.",
        default="from its extension; csv for stdin",
    ),
]
DelimiterOption = Annotated[
    str | None,
    _option(
        "--delimiter", "CHAR", "CSV field separator (\\t or tab for a tab).", default="a comma"
    ),
]
MaxColumnsOption = Annotated[
    int,
    _option(
        "--max-columns",
        "N",
        "Refuse a table of more columns than this (exit code 3), before reading its rows.",
        at_least=1,
    ),
]
ProfileOption = Annotated[
    str | None,
    _option(
        "--profile",
        "FILE",
        "The training profile to judge input by.",
        default="profile.json beside the model, else the one in its card",
    ),
]
JsonOption = Annotated[bool, _option("--json", None, "Print the report as JSON on stdout.")]
DebugOption = Annotated[bool, _option("--debug", None, "Show the traceback of an error.")]
QuietOption = Annotated[bool, _option("--quiet -q", None, "Print nothing but errors.")]


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
        except BrokenPipeError as exc:
            # The reader of our stdout went away (`| head`): not an error worth a message,
            # but not a success either, as every tool killed by SIGPIPE reports. What is left
            # in stdout's buffer goes nowhere, rather than failing again at exit.
            with suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(exit_code_of(exc)) from None
        except MemoryError as exc:
            raise _fail(
                "out of memory (try a smaller --batch-size)", exit_code_of(exc), debug
            ) from None
        except Exception as exc:
            hint = "" if debug else " (run with --debug for the traceback)"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise _fail(f"internal error: {reason}{hint}", ExitCode.INTERNAL, debug) from None

    return run  # type: ignore[return-value]


def _fail(message: str, code: int, debug: bool) -> typer.Exit:
    if debug:
        traceback.print_exc()
    # Messages quote file names, column names and values: escaped, they stay one line.
    print(f"infer-cli: error: {printable(message)}", file=sys.stderr)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        print(f"infer-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Train, score and serve scikit-learn models from the command line."""


@app.command(
    short_help="Train a Pipeline on a table; save it with its metrics.",
    epilog=_examples(
        "infer-cli train -i sample_data/churn.csv --target churned",
        "infer-cli train -i sample_data/housing.csv --target price -o housing \\",
        "                --algorithm gbm --format skops",
        "infer-cli train -i sample_data/reviews.csv --target sentiment \\",
        "                --text-column review --ignore review_id",
    ),
)
@reporting_errors
def train(
    input: Annotated[str, _option("--input -i", "FILE", "Training table (- for stdin).")],
    target: Annotated[str, _option("--target -t", "COL", "Column to predict.")],
    output: Annotated[str, _option("--output -o", "DIR", "Directory to save the model in.")] = (
        "model"
    ),
    algorithm: Annotated[
        Algorithm,
        _option(
            "--algorithm",
            listed(ALGORITHMS),
            "auto: logistic regression for classification, ridge for regression.",
        ),
    ] = "auto",
    old_algorithm: Annotated[Algorithm | None, _option("--model", None, "", hidden=True)] = None,
    task: Annotated[
        Task, _option("--task", listed(TASKS), "auto: decided from the target's values.")
    ] = "auto",
    test_size: Annotated[
        float, _option("--test-size", "SHARE", "Share of rows held out for the metrics (0-1).")
    ] = 0.2,
    seed: Annotated[int, _option("--seed", "N", "Random seed for the split.")] = 0,
    text_column: Annotated[
        list[str] | None,
        _option("--text-column", "COLS", "Columns to treat as free text, separated by commas."),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        _option("--ignore", "COLS", "Columns to leave out of the model, separated by commas."),
    ] = None,
    file_format: Annotated[
        ModelFormat,
        _option(
            "--format",
            listed(MODEL_FORMATS),
            "Model file: joblib, or skops (cannot run code when loaded).",
        ),
    ] = "joblib",
    input_format: InputFormatOption = None,
    max_columns: MaxColumnsOption = MAX_COLUMNS,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Train a scikit-learn Pipeline on a table and save it with its metrics."""
    from .report import render_notices, render_train_report, stderr_console
    from .training import TrainOptions, train_file

    console = stderr_console(quiet)
    if old_algorithm is not None:
        notice = "--model is now --algorithm; --model will be removed in the next release"
        render_notices(console, [notice])
        algorithm = old_algorithm
    options = TrainOptions(
        target=target,
        algorithm=algorithm,
        task=task,
        test_size=test_size,
        seed=seed,
        text_columns=tuple(_split_names(text_column) or ()),
        ignore=tuple(_split_names(ignore) or ()),
    )
    result, stopwatch = train_file(
        input, output, options, serialization=file_format, input_format=input_format,
        max_columns=max_columns,
    )  # fmt: skip
    render_notices(console, result.notices)
    render_train_report(console, result, output, stopwatch)


@app.command(
    short_help="Score a file or a stream, appending a prediction column.",
    epilog=_examples(
        "infer-cli predict -i new.csv -o scored.csv",
        "cat new.csv | infer-cli predict > scored.csv",
        "infer-cli predict -i new.csv.gz -o scored.parquet --keep customer_id --proba",
        "infer-cli predict -i new.csv -o scored.csv --on-bad-rows skip \\",
        "                  --rejects rejects.csv --summary-json run.json",
        "infer-cli predict --engine dask -i 'data/part-*.csv' -o scored/",
    ),
)
@reporting_errors
def predict(
    model: ModelOption = None,
    input: Annotated[
        str,
        _option(
            "--input -i",
            "FILE",
            "Rows to score (- for stdin); with --engine dask, a glob or a directory.",
        ),
    ] = "-",
    output: Annotated[
        str,
        _option(
            "--output -o",
            "FILE",
            "Where to write them (- for stdout); with --engine dask, a directory.",
        ),
    ] = "-",
    proba: Annotated[bool, _option("--proba", None, "Add a proba_<class> column per class.")] = (
        False
    ),
    precision: Annotated[
        int | None,
        _option(
            "--precision",
            "N",
            "Round the probabilities to N decimal places.",
            default="each exactly the float64 computed",
            at_least=0,
        ),
    ] = None,
    keep: Annotated[
        list[str] | None,
        _option(
            "--keep",
            "COLS",
            "Input columns to write beside the predictions, separated by commas, or none.",
            default="every input column",
        ),
    ] = None,
    no_header: Annotated[
        bool,
        _option(
            "--no-header",
            None,
            "The CSV input has no header row: its fields are the model's columns, in order.",
        ),
    ] = False,
    input_format: InputFormatOption = None,
    output_format: Annotated[
        OutputFormat | None,
        _option(
            "--output-format",
            listed(OUTPUT_FORMATS),
            "Format of the output; mlflow-json is the predictions document `mlflow models "
            "predict` writes.",
            default="from its extension; csv for stdout",
        ),
    ] = None,
    delimiter: DelimiterOption = None,
    batch_size: Annotated[
        int, _option("--batch-size", "N", "Rows read, scored and written at a time.", at_least=1)
    ] = DEFAULT_BATCH_ROWS,
    on_bad_rows: Annotated[
        BadRows,
        _option(
            "--on-bad-rows",
            listed(BAD_ROWS),
            "fail: stop at the first bad row, writing nothing. skip: write bad rows to "
            "--rejects and score the others.",
        ),
    ] = "fail",
    rejects: Annotated[
        str | None,
        _option(
            "--rejects", "FILE", "Where --on-bad-rows skip writes the bad rows, with the reason."
        ),
    ] = None,
    summary_json: Annotated[
        str | None,
        _option("--summary-json", "FILE", "Also write the summary as JSON here, even on failure."),
    ] = None,
    fail_on_drift: Annotated[
        float | None,
        _option(
            "--fail-on-drift",
            "PSI",
            "Exit with code 5, the output still complete, when a column's or the predictions' "
            "PSI against the training profile exceeds this (0.25: a shift).",
            at_least=0,
        ),
    ] = None,
    drift_report: Annotated[
        str | None,
        _option(
            "--drift-report", "FILE", "Also write an HTML page of the drift, a chart per column."
        ),
    ] = None,
    profile: ProfileOption = None,
    engine: Annotated[
        Engine,
        _option(
            "--engine",
            listed(ENGINES),
            "single: this process. dask: a Dask cluster, one partition per input file; -o "
            "and --rejects are directories of parts with a _SUCCESS marker.",
        ),
    ] = "single",
    scheduler: Annotated[
        str | None,
        _option(
            "--scheduler",
            "URL",
            "--engine dask: a running scheduler (tcp://HOST:PORT).",
            default="a local cluster, a worker per core",
        ),
    ] = None,
    max_columns: MaxColumnsOption = MAX_COLUMNS,
    threshold: ThresholdOption = None,
    positive_class: PositiveClassOption = None,
    tracking_uri: TrackingUriOption = None,
    trust_types: TrustTypesOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Score a file or a stream: the input rows with a prediction column appended, in chunks."""
    from .core.quick_start import quick_start

    if input == "-" and sys.stdin.isatty():
        raise UsageError("no input: give a file with -i, or pipe rows in (cat new.csv | ...)")
    # A run of a few rows is mostly imports and the model's load: both go as `serve`'s start.
    with quick_start() as loaded:
        from .batch import PredictRun, ScoringOptions, run_predict
        from .errors import DriftDetected
        from .report import (
            predict_progress,
            render_notices,
            render_predict_summary,
            stderr_console,
            write_drift_report,
        )
        from .tables import check_delimiter

        kept = _split_names(keep)
        options = ScoringOptions(
            input=input,
            output=output,
            input_format=input_format,
            output_format=output_format,
            delimiter=check_delimiter(delimiter),
            header=not no_header,
            batch_size=batch_size,
            proba=proba,
            keep=None if kept is None else tuple(name for name in kept if name != "none"),
            skip_bad_rows=on_bad_rows == "skip",
            rejects=rejects,
            max_columns=max_columns,
            threshold=threshold,
            positive_class=positive_class,
            precision=precision,
        )
        console = stderr_console(quiet)
        run = PredictRun(
            options, model, _split_names(trust_types), engine, scheduler, summary_json,
            tracking_uri, profile, fail_on_drift, drift_report,
        )  # fmt: skip

        def on_loaded(scoring_model: Any) -> None:
            loaded()
            render_notices(console, scoring_model.notices)

        report, figures = run_predict(
            run, on_loaded=on_loaded, progress=lambda: predict_progress(console)
        )
    render_notices(console, report.notices)
    if drift_report:
        write_drift_report(drift_report, figures)
    render_predict_summary(console, figures)
    if figures["exit_code"] == ExitCode.DRIFT:
        raise DriftDetected(figures["error"])


@app.command(
    short_help="Add a training profile to a model, for drift checks.",
    epilog=_examples(
        "infer-cli profile -m model -i sample_data/churn.csv",
        "infer-cli profile -m old.joblib -i train.parquet --profile old.profile.json",
    ),
)
@reporting_errors
def profile(
    input: Annotated[
        str, _option("--input -i", "FILE", "The model's training data: CSV or Parquet.")
    ],
    model: ModelOption = None,
    profile: Annotated[
        str | None,
        _option(
            "--profile",
            "FILE",
            "Where to write it.",
            default="profile.json in the model's directory, NAME.profile.json beside a bare file",
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
        model, input, profile, trust_types=_split_names(trust_types), tracking_uri=tracking_uri
    )
    render_notices(console, written.model.notices)
    render_profile_written(console, written)


@app.command(
    short_help="Show the model card: signature, metrics, integrity.",
    epilog=_examples(
        "infer-cli info -m model",
        "infer-cli info -m model --json",
        "infer-cli info -m model --route",
    ),
)
@reporting_errors
def info(
    model: ModelOption = None,
    json: JsonOption = False,
    tracking_uri: TrackingUriOption = None,
    route: Annotated[
        bool,
        _option(
            "--route",
            None,
            "Also load the model (after the integrity and trust checks) to say how it is "
            "scored: arrays fed to its fitted steps, or the usual DataFrame, and why.",
        ),
    ] = False,
    trust_types: TrustTypesOption = None,
    debug: DebugOption = False,
) -> None:
    """Show the model card: origin, task, signature, metrics, versions, format and integrity."""
    from dataclasses import replace

    from .core import check_loadable, inspect_model, load_model
    from .report import inspection_json, render_model_card, stderr_console

    trusted = _split_names(trust_types)
    inspection = inspect_model(model, trust_types=trusted, tracking_uri=tracking_uri)
    if route and inspection.route is None:
        check_loadable(inspection)
        loaded = load_model(model, trust_types=trusted, tracking_uri=tracking_uri)
        inspection = replace(inspection, route=loaded.route_note)
    if json:
        _print_json(inspection_json(inspection))
    else:
        render_model_card(stderr_console(), inspection)
    check_loadable(inspection)


@app.command(
    short_help="Measure a model's quality on a labelled file.",
    epilog=_examples(
        "infer-cli evaluate -m model -i sample_data/churn.csv",
        "infer-cli evaluate -m model -i labelled.csv --threshold 0.3 --json",
        "infer-cli evaluate --log predictions/ --labels outcomes.csv --on customer_id",
        "infer-cli evaluate -i holdout.csv --choose-threshold 'precision>=0.9' --save",
    ),
)
@reporting_errors
def evaluate(
    input: Annotated[
        str | None, _option("--input -i", "FILE", "Labelled rows (- for stdin).")
    ] = None,
    log: Annotated[
        str | None,
        _option(
            "--log",
            "DIR",
            "Instead of --input: the predictions a server logged (serve --log-predictions), "
            "joined to --labels on --on, measured as they were served.",
        ),
    ] = None,
    labels: Annotated[
        str | None, _option("--labels", "FILE", "With --log: the labels, keyed by --on.")
    ] = None,
    on: Annotated[
        str | None,
        _option("--on", "COL", "With --log: the key, request_id or a logged input column."),
    ] = None,
    model: ModelOption = None,
    target: Annotated[
        str | None,
        _option("--target -t", "COL", "Column of true labels.", default="the model's target"),
    ] = None,
    threshold: ThresholdOption = None,
    positive_class: PositiveClassOption = None,
    choose_threshold: Annotated[
        str | None,
        _option(
            "--choose-threshold",
            "C",
            "Binary classifiers: find the threshold that gives precision>=P (with the best "
            "recall), recall>=R (with the best precision), or the best f1, on this file.",
        ),
    ] = None,
    save: Annotated[
        bool,
        _option(
            "--save",
            None,
            "Record the threshold (chosen, or --threshold) in the model's model.json, for "
            "predict, serve and info to use.",
        ),
    ] = False,
    input_format: InputFormatOption = None,
    delimiter: DelimiterOption = None,
    json: JsonOption = False,
    max_columns: MaxColumnsOption = MAX_COLUMNS,
    tracking_uri: TrackingUriOption = None,
    trust_types: TrustTypesOption = None,
    debug: DebugOption = False,
) -> None:
    """Measure a model's quality on a labelled file, streamed as predict streams it, or the
    live model's on the predictions a server logged, once their labels are in."""
    from .batch import check_log_options, evaluate_file, evaluate_log
    from .report import render_evaluation, render_notices, stderr_console
    from .tables import check_delimiter

    console = stderr_console()
    alone = {
        "--input": input, "--model": model, "--threshold": threshold,
        "--positive-class": positive_class, "--choose-threshold": choose_threshold,
        "--save": save, "--tracking-uri": tracking_uri, "--trust-types": trust_types,
    }  # fmt: skip
    question = check_log_options(
        log, labels, on, alone, target=target, input_format=input_format,
        delimiter=check_delimiter(delimiter), max_columns=max_columns,
    )  # fmt: skip
    if question is not None:
        evaluation = evaluate_log(question)
    else:
        assert input is not None
        evaluation = evaluate_file(
            input, model, target=target, threshold=threshold, positive_class=positive_class,
            choose=choose_threshold, save=save, delimiter=check_delimiter(delimiter),
            input_format=input_format, max_columns=max_columns,
            trust_types=_split_names(trust_types), tracking_uri=tracking_uri,
            on_loaded=lambda loaded: render_notices(console, loaded.notices),
        )  # fmt: skip
    render_notices(console, evaluation.notices)
    if json:
        _print_json(evaluation.to_json())
    else:
        render_evaluation(console, evaluation)


@app.command(
    short_help="Measure throughput, latency, and a server under load.",
    epilog=_examples(
        "infer-cli bench -m model",
        "infer-cli bench -m model --url http://127.0.0.1:5000 --concurrency 1,8",
    ),
)
@reporting_errors
def bench(
    model: ModelOption = None,
    input: Annotated[
        str | None,
        _option("--input -i", "FILE", "Rows to score.", default="the model's example rows"),
    ] = None,
    input_format: InputFormatOption = None,
    url: Annotated[
        str | None, _option("--url", "URL", "Also load-test a running server at this URL.")
    ] = None,
    max_batch: Annotated[
        int, _option("--max-batch", "N", "Largest batch to measure.", at_least=1)
    ] = 100_000,
    concurrency: Annotated[
        list[str] | None,
        _option(
            "--concurrency",
            "N,N",
            "Connection counts for --url, separated by commas.",
            default="1,4,16,64",
        ),
    ] = None,
    seconds: Annotated[
        float, _option("--seconds", "SECONDS", "Time for each measurement.", at_least=0.05)
    ] = 1.0,
    json: JsonOption = False,
    tracking_uri: TrackingUriOption = None,
    trust_types: TrustTypesOption = None,
    debug: DebugOption = False,
) -> None:
    """Measure batch throughput, single-row latency and, with --url, a server under load."""
    from .benchmarking import CONCURRENCY_LEVELS, bench_model
    from .report import render_bench, render_notices, stderr_console

    console = stderr_console()
    levels = _whole_numbers("--concurrency", _split_names(concurrency)) or CONCURRENCY_LEVELS
    with console.status("measuring") as status:
        report = bench_model(
            model, input, input_format=input_format, max_batch=max_batch, seconds=seconds,
            url=url, levels=levels,
            trust_types=_split_names(trust_types), tracking_uri=tracking_uri,
            on_loaded=lambda loaded: render_notices(console, loaded.notices),
            on_progress=status.update,
        )  # fmt: skip
    if json:
        _print_json(report.to_json())
    else:
        render_bench(console, report)


@app.command(
    short_help="Serve the model over HTTP (MLflow and V2 protocols).",
    epilog=_examples(
        "infer-cli serve -m model",
        "infer-cli serve -m model --host 0.0.0.0 --port 8080 --workers 4 --reload",
        "infer-cli serve -m churn=models:/churn@champion -m iris=./iris",
    ),
)
@reporting_errors
def serve(
    model: Annotated[
        list[str] | None,
        _option(
            "--model -m",
            "PATH",
            "Model directory, bare .joblib/.pkl file, or MLflow model URI (models:/NAME/VERSION, "
            "models:/NAME@ALIAS, models:/NAME/STAGE, models:/NAME/latest, models:/MODEL_ID, "
            "runs:/RUN_ID/PATH), named as NAME=PATH. Repeat to serve several, each at "
            "/models/NAME/invocations and /v2/models/NAME; the first is the default, at "
            "/invocations.",
            default="$INFER_CLI_MODEL, else ./model; named after its directory or file",
        ),
    ] = None,
    host: Annotated[str, _option("--host", "ADDRESS", "Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, _option("--port -p", "N", "Port to listen on (0: any free).", callback=_port_number)
    ] = 5000,
    workers: Annotated[
        int, _option("--workers -w", "N", "Processes sharing the socket.", at_least=1)
    ] = 1,
    max_batch_size: Annotated[
        int, _option("--max-batch-size", "N", "Most rows scored in one model call.", at_least=1)
    ] = 64,
    max_batch_delay_ms: Annotated[
        float,
        _option(
            "--max-batch-delay-ms",
            "MS",
            "Longest a batch waits for requests already arriving (a lone one never waits).",
            at_least=0,
        ),
    ] = 2.0,
    timeout: Annotated[
        float,
        _option(
            "--timeout", "SECONDS", "Time a prediction may take (504 after it).", callback=_positive
        ),
    ] = 30.0,
    read_timeout: Annotated[
        float,
        _option(
            "--read-timeout",
            "SECONDS",
            "Time a client may take to send a request (408 after it).",
            callback=_positive,
        ),
    ] = 10.0,
    max_body_mb: Annotated[
        float, _option("--max-body-mb", "MB", "Largest request body, in MiB (413).", at_least=0)
    ] = 64.0,
    max_rows: Annotated[
        int, _option("--max-rows", "N", "Most rows in one request (413).", at_least=1)
    ] = 1_000_000,
    max_columns: Annotated[
        int, _option("--max-columns", "N", "Most columns in one request (413).", at_least=1)
    ] = 10_000,
    reload: Annotated[
        bool,
        _option(
            "--reload",
            None,
            "Reload the model when its files change or, for a models:/ URI, when the "
            "registry moves its alias or stage to another version.",
        ),
    ] = False,
    reload_interval: Annotated[
        float | None,
        _option(
            "--reload-interval",
            "SECONDS",
            "Time between two looks for a new model with --reload.",
            default="1 for files, 10 for a model URI's registry",
            at_least=0.05,
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        _option(
            "--threshold",
            "P",
            "Binary classifiers: the decision threshold on the positive class's probability, "
            "unless a request sets its own (params.threshold).",
            default="the one saved by evaluate --save, else the model's own labels",
        ),
    ] = None,
    access_log: Annotated[
        bool,
        _option("--access-log/--no-access-log", None, "Log each request on stderr.", default="on"),
    ] = True,
    drift_window: Annotated[
        int,
        _option(
            "--drift-window",
            "N",
            "Recent rows judged against the training profile, per worker: PSI gauges on "
            "/metrics, the table on GET /drift (0: off).",
            at_least=0,
        ),
    ] = 10_000,
    auth_token_file: Annotated[
        str | None,
        _option(
            "--auth-token-file",
            "FILE",
            "Bearer tokens clients must send, one a line, read again on SIGHUP (also: "
            "$INFER_CLI_AUTH_TOKEN). /ping, /health and /v2/health/live stay open.",
        ),
    ] = None,
    tls_cert: Annotated[
        str | None,
        _option("--tls-cert", "FILE", "PEM certificate (chain): serve HTTPS instead of HTTP."),
    ] = None,
    tls_key: Annotated[
        str | None,
        _option("--tls-key", "FILE", "PEM private key of --tls-cert, if not in its file."),
    ] = None,
    tls_client_ca: Annotated[
        str | None,
        _option("--tls-client-ca", "FILE", "Require client certificates signed by these PEM CAs."),
    ] = None,
    log_predictions: Annotated[
        str | None,
        _option(
            "--log-predictions",
            "DIR",
            "Record every scored row (request id, time, model, inputs, prediction, latency) "
            "in files in DIR, each renamed into place once complete.",
        ),
    ] = None,
    log_format: Annotated[
        LogFormat,
        _option("--log-format", listed(LOG_FORMATS), "Format of the prediction log's files."),
    ] = "parquet",
    log_rotate_mb: Annotated[
        float,
        _option(
            "--log-rotate-mb",
            "MB",
            "Start a new log file past this size, in MiB.",
            callback=_positive,
        ),
    ] = 64.0,
    log_rotate_seconds: Annotated[
        float,
        _option(
            "--log-rotate-seconds",
            "SECONDS",
            "Start a new log file after this long.",
            callback=_positive,
        ),
    ] = 300.0,
    log_queue_rows: Annotated[
        int,
        _option(
            "--log-queue-rows",
            "N",
            "Most rows waiting to be written; beyond, rows are dropped and counted (never "
            "requests).",
            at_least=1,
        ),
    ] = 100_000,
    profile: ProfileOption = None,
    tracking_uri: TrackingUriOption = None,
    trust_types: TrustTypesOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Serve one model or several over HTTP: MLflow's /invocations and the V2 protocol."""
    from .report import render_banner, render_summary, stderr_console
    from .serve import ServeOptions, run_server

    console = stderr_console(quiet)
    options = ServeOptions(
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_rows=max_rows,
        max_columns=max_columns,
        request_timeout=timeout,
        read_timeout=read_timeout,
        max_batch_rows=max_batch_size,
        max_batch_delay=max_batch_delay_ms / 1000,
        access_log=access_log and not quiet,
        drift_window=drift_window,
        profile=profile,
        threshold=threshold,
        auth_token_file=auth_token_file or None,
        auth_token=os.environ.get("INFER_CLI_AUTH_TOKEN") or None,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        log_predictions=log_predictions,
        log_format=log_format,
        log_rotate_mb=log_rotate_mb,
        log_rotate_seconds=log_rotate_seconds,
        log_queue_rows=log_queue_rows,
    )
    summary = run_server(
        model or [], host=host, port=port, workers=workers, reload=reload, options=options,
        trust_types=_split_names(trust_types), tracking_uri=tracking_uri,
        reload_interval=reload_interval,
        announce=lambda *announced: render_banner(console, *announced),
    )  # fmt: skip
    render_summary(console, summary)


def _print_json(document: object) -> None:
    import json

    print(json.dumps(document, indent=2))


def _split_names(values: Sequence[str] | None) -> list[str] | None:
    """The names of a list option, comma-separated and repeatable; None when not given."""
    if values is None:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _whole_numbers(flag: str, values: Sequence[str] | None) -> tuple[int, ...] | None:
    if values is None:
        return None
    wrong = next((value for value in values if not value.isdigit() or int(value) < 1), None)
    if wrong is not None or not values:
        raise UsageError(f"{flag} takes positive whole numbers, not '{wrong or ''}'")
    return tuple(int(value) for value in values)


def main() -> None:
    """The console script. Its wall times count from the process's start.

    After a successful `predict`, the process ends without the interpreter's tear-down of
    every module: its files are complete and closed by then, and the tear-down of
    scikit-learn, pandas and pyarrow costs about 0.35 s (measured), a tenth of scoring a
    million rows.

    OpenBLAS's idle threads are told to sleep after a short spin, not the default long one,
    unless the environment says otherwise: after each model call on a chunk of a file they
    spun for a while, taking a core from the threads that read and write it (on 1M churn
    rows, 1.1 s of a run's 4 s of CPU). Only how they wait changes, not how many there
    are, so every product is computed as before.
    """
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_SPIN_STEPS)
    count_from_process_start()
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
