"""`evaluate --log`: the live model's quality, from the predictions the server logged
(`serve --log-predictions`) joined to labels that arrived later."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..core.metrics import classification_metrics, regression_metrics
from ..errors import DataError, UsageError
from ..tables.limits import MAX_COLUMNS
from .evaluation import Evaluation, add_threshold_view, roc_auc

PROBABILITY = "probabilities."
INPUT = "inputs."


@dataclass(frozen=True)
class LogQuestion:
    """What `evaluate --log` was asked: the log, the labels and the key joining them."""

    directory: str
    labels: str
    on: str
    target: str | None = None
    input_format: str | None = None
    delimiter: str | None = None
    max_columns: int = MAX_COLUMNS


def check_log_options(
    log: str | None,
    labels: str | None,
    on: str | None,
    given: dict[str, Any],
    *,
    target: str | None = None,
    input_format: str | None = None,
    delimiter: str | None = None,
    max_columns: int = MAX_COLUMNS,
) -> LogQuestion | None:
    """The question `evaluate --log` asks, or None for `evaluate -i`; options that do not go
    together are a usage error. `given` holds `--input` and the options that go with it
    alone, by name; the others are the labels file's."""
    if log is None:
        if labels is not None or on is not None:
            raise UsageError("--labels and --on go with --log DIR (the prediction log)")
        if given.get("--input") is None:
            raise UsageError("give --input FILE (labelled rows) or --log DIR (the prediction log)")
        return None
    if given.get("--input") is not None:
        raise UsageError("give --input FILE or --log DIR, not both")
    if labels is None or on is None:
        raise UsageError("--log needs --labels FILE and --on COLUMN (request_id or an input)")
    refused = [name for name, value in given.items() if name != "--input" and value]
    if refused:
        raise UsageError(
            f"{', '.join(refused)}: not with --log, which measures the predictions as they "
            "were served"
        )
    return LogQuestion(log, labels, on, target, input_format, delimiter, max_columns)


def evaluate_log(question: LogQuestion) -> Evaluation:
    """Join the logged predictions to the labels on `question.on` and measure them."""
    from ..tables.inputs import input_format
    from ..tables.log_files import read_log
    from ..tables.readers import describe
    from ..tables.whole_table import read_table

    table, files = read_log(question.directory)
    logged = table.to_pandas()
    key = question.on if question.on in logged.columns else INPUT + question.on
    if key not in logged.columns or key.startswith(PROBABILITY):
        inputs = [c[len(INPUT) :] for c in logged.columns if c.startswith(INPUT)]
        raise UsageError(
            f"--on {question.on}: the prediction log has no such column (request_id, or one "
            f"of its inputs: {_names(inputs)})"
        )
    source = describe(question.labels)
    labels = read_table(
        question.labels,
        format=question.input_format,
        delimiter=question.delimiter,
        max_columns=question.max_columns,
    )
    labels.columns = [str(name) for name in labels.columns]
    if question.on not in labels.columns:
        raise UsageError(
            f"{source}: no column '{question.on}' (--on); it has: {_names(list(labels.columns))}"
        )
    target = _target(question, list(labels.columns), source)
    label_keys = _keys(labels[question.on])
    _refuse_duplicates(label_keys, source, input_format(question.labels, question.input_format))
    notices: list[str] = []
    logged["__key"] = _keys(logged[key])
    logged = logged[logged["__key"].notna()].sort_values("time", kind="stable")
    latest = logged.drop_duplicates("__key", keep="last")
    if len(latest) < len(logged):
        notices.append(
            f"{len(logged) - len(latest):,} logged row(s) share their '{question.on}' with a "
            "later one: the latest prediction of each is evaluated"
        )
    joined = pd.DataFrame({"__key": label_keys, "__label": labels[target]}).merge(
        latest, on="__key", how="inner"
    )
    if joined.empty:
        sample = ", ".join(repr(k) for k in label_keys.dropna().head(3))
        raise DataError(
            f"{source}: none of its {len(labels):,} keys in '{question.on}' ({sample}...) is "
            f"in the prediction log ({len(logged):,} rows in {files} file(s) in "
            f"{question.directory})"
        )
    unmatched = len(labels) - len(joined)
    notices.append(
        f"joined {len(joined):,} of {len(labels):,} labels to logged predictions on "
        f"'{question.on}' ({len(logged):,} rows logged in {files} file(s))"
        + (f"; {unmatched:,} matched none" if unmatched else "")
    )
    versions = sorted(set(joined["model_sha256"]))
    if len(versions) > 1:
        notices.append(
            f"the joined rows were scored by {len(versions)} model versions (SHA-256 "
            f"{', '.join(v[:12] for v in versions)}): measured together"
        )
    labelled = joined["__label"].notna()
    unlabelled = int((~labelled).sum())
    if unlabelled:
        notices.append(f"skipped {unlabelled} row(s) with no value in '{target}'")
    joined = joined[labelled]
    if joined.empty:
        raise DataError(f"{source}: no labelled rows to evaluate (every '{target}' is empty)")
    return _measure(joined, target, source, unlabelled, notices)


def _measure(
    joined: pd.DataFrame, target: str, source: str, unlabelled: int, notices: list[str]
) -> Evaluation:
    predicted = joined["prediction"]
    if pd.api.types.is_float_dtype(predicted):
        truth = pd.to_numeric(joined["__label"], errors="coerce")
        if truth.isna().any():
            value = joined["__label"][truth.isna()].iloc[0]
            raise DataError(f"{source}: target '{target}': {value!r} is not a number")
        metrics = regression_metrics(truth.to_numpy(np.float64), predicted.to_numpy(np.float64))
        return Evaluation(
            "regression", target, source, len(joined), unlabelled, metrics, notices=notices
        )
    y_pred, y_true = _as_labels(predicted), _as_labels(joined["__label"], like=predicted)
    if y_true.dtype != y_pred.dtype:
        y_pred, y_true = y_pred.astype(str).astype(object), y_true.astype(str).astype(object)
    classes = [c[len(PROBABILITY) :] for c in joined.columns if c.startswith(PROBABILITY)]
    named = _typed(classes, y_pred) if classes else []
    seen = sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=str)
    order = [*named, *(label for label in seen if label not in named)]
    evaluation = Evaluation(
        "classification", target, source, len(joined), unlabelled,
        classification_metrics(y_true, y_pred, labels=order), notices=notices,
    )  # fmt: skip
    if classes:
        proba = joined[[PROBABILITY + c for c in classes]].to_numpy(np.float64)
        asked = ~np.isnan(proba).any(axis=1)
        known = asked & np.isin(y_true, np.array(named, dtype=object))
        if asked.any() and not asked.all():
            notices.append(
                f"{int(asked.sum()):,} of {len(asked):,} rows have logged probabilities "
                "(their requests asked for them): ROC AUC and the threshold table use those"
            )
        if known.any():
            evaluation.roc_auc = roc_auc(y_true[known], proba[known], named)
            if len(named) == 2:
                add_threshold_view(evaluation, y_true[known], proba[known], named, 1)
    return evaluation


def _target(question: LogQuestion, columns: list[str], source: str) -> str:
    if question.target is not None:
        if question.target not in columns:
            raise UsageError(f"{source}: no target column '{question.target}' (--target)")
        return question.target
    others = [name for name in columns if name != question.on]
    if len(others) != 1:
        raise UsageError(
            f"{source}: name its label column with --target (it has: {_names(columns)})"
        )
    return others[0]


def _keys(values: pd.Series) -> pd.Series:
    """Keys as text, so that 17 in one file meets "17" in the other (and 17.0, the way a
    column of whole numbers with a gap in it is read, meets both)."""
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if (whole == np.floor(whole)).all() and (whole.abs() < 2.0**53).all():
            values = values.astype("Int64")
    text = values.astype("string")
    return text.where(text.str.len() > 0)


def _refuse_duplicates(keys: pd.Series, source: str, kind: str) -> None:
    repeated = keys[keys.notna() & keys.duplicated(keep=False)]
    if repeated.empty:
        return
    first = repeated.iloc[0]
    where = [int(i) for i in np.flatnonzero((keys == first).fillna(False).to_numpy())[:2]]
    offset, unit = {"parquet": (1, "rows"), "jsonl": (1, "lines")}.get(kind, (2, "lines"))
    raise DataError(
        f"{source}: key {first!r} is labelled twice ({unit} {where[0] + offset} and "
        f"{where[1] + offset}); each key must be labelled once"
    )


def _as_labels(values: pd.Series, like: pd.Series | None = None) -> np.ndarray:
    """Labels in the predictions' type: whole numbers if the model answered numbers."""
    reference = values if like is None else like
    if pd.api.types.is_integer_dtype(reference) and not pd.api.types.is_bool_dtype(reference):
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().all() and (numbers == np.floor(numbers)).all():
            return numbers.to_numpy(np.int64)
    return values.astype(str).to_numpy(dtype=object)


def _typed(classes: list[str], predicted: np.ndarray) -> list[Any]:
    """The probability fields' names (text) as labels of the predictions' type."""
    if predicted.dtype.kind in "iu":
        try:
            return [int(name) for name in classes]
        except ValueError:
            return classes
    return classes


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:20])
    return shown + (f" and {len(names) - 20} more" if len(names) > 20 else "") if names else "none"
