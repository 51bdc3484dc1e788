"""The values a user chooses among on the command line, each list written once.

The command line declares its options with these types (Typer checks a value and lists the
choices in the help), and the engines take them as they are; this module imports nothing,
so `infer-cli --help` pays nothing for it.
"""

from __future__ import annotations

from typing import Literal, get_args

Engine = Literal["single", "dask"]
BadRows = Literal["fail", "skip"]
InputFormat = Literal["csv", "csv.gz", "tsv", "parquet", "jsonl"]
OutputFormat = Literal["csv", "csv.gz", "tsv", "parquet", "jsonl", "mlflow-json"]
Algorithm = Literal["auto", "logistic", "forest", "gbm", "linear", "ridge"]
Task = Literal["auto", "classification", "regression"]
ModelFormat = Literal["joblib", "skops"]
LogFormat = Literal["parquet", "jsonl"]

ENGINES: tuple[Engine, ...] = get_args(Engine)
BAD_ROWS: tuple[BadRows, ...] = get_args(BadRows)
INPUT_FORMATS: tuple[InputFormat, ...] = get_args(InputFormat)
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)
ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)
TASKS: tuple[Task, ...] = get_args(Task)
MODEL_FORMATS: tuple[ModelFormat, ...] = get_args(ModelFormat)
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)

CLASSIFIERS: tuple[Algorithm, ...] = ("logistic", "forest", "gbm")
REGRESSORS: tuple[Algorithm, ...] = ("linear", "ridge", "forest", "gbm")


def listed(choices: tuple[str, ...]) -> str:
    """Choices as a help page shows them: `[csv|parquet]`."""
    return "[" + "|".join(choices) + "]"
