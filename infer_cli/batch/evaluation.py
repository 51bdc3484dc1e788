"""Evaluation: a model's quality on a labelled table, scored chunk by chunk as `predict` does."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..core.metrics import classification_metrics, regression_metrics
from ..core.model import Model
from ..core.store import load_model
from ..errors import DataError, SchemaError, UsageError
from ..tables.limits import DEFAULT_BATCH_ROWS, MAX_COLUMNS

SWEEP_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class LabelledChunk:
    """Rows with their labels, and where they came from, so errors can name a line."""

    frame: pd.DataFrame
    first_row: int = 0
    source: str | None = None
    line_of: Callable[[int], int | None] | None = None


def read_labelled(
    path: str,
    model: Model,
    target: str | None,
    *,
    delimiter: str = ",",
    batch_size: int = DEFAULT_BATCH_ROWS,
    max_columns: int = MAX_COLUMNS,
) -> Iterator[LabelledChunk]:
    """Stream a labelled file as `predict` reads it: the model's columns and the target."""
    from ..tables.readers import open_table
    from .scoring import model_frame, text_to_objects

    target = _target_of(model, target)
    with open_table(
        path, delimiter=delimiter, batch_size=batch_size, max_columns=max_columns
    ) as reader:
        if target not in reader.columns:
            raise DataError(
                f"{reader.source}: no target column '{target}' (use --target to name it)"
            )
        for chunk in reader:
            frame = model_frame(model.signature, chunk.table, from_text=reader.text_columns)
            labels = chunk.table[target]
            frame[target] = (
                text_to_objects(labels) if reader.text_columns else labels.to_pandas().to_numpy()
            )
            yield LabelledChunk(frame, chunk.first_row, reader.source, chunk.line_of)


@dataclass
class Evaluation:
    """Metrics of one model on one labelled table."""

    task: str
    target: str
    source: str
    rows: int
    unlabelled_rows: int
    metrics: dict[str, Any]
    roc_auc: float | None = None
    positive_class: Any = None
    threshold: float | None = None
    at_threshold: dict[str, Any] | None = None
    sweep: list[dict[str, float]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "task": self.task,
            "target": self.target,
            "source": self.source,
            "rows": self.rows,
            "unlabelled_rows": self.unlabelled_rows,
            "metrics": self.metrics,
        }
        if self.task == "classification":
            document["roc_auc"] = self.roc_auc
        if self.sweep:
            document["positive_class"] = self.positive_class
            document["threshold"] = self.threshold
            document["at_threshold"] = self.at_threshold
            document["threshold_sweep"] = self.sweep
        return document


def evaluate_file(
    path: str,
    model: str | None,
    *,
    target: str | None = None,
    threshold: float | None = None,
    delimiter: str = ",",
    max_columns: int = MAX_COLUMNS,
    trust_types: list[str] | None = None,
    tracking_uri: str | None = None,
    on_loaded: Callable[[Model], None] = lambda _: None,
) -> Evaluation:
    """The `evaluate` command: load the model, stream the labelled file through it and
    measure; `on_loaded` sees the model before its rows are read."""
    loaded = load_model(model, trust_types=trust_types, tracking_uri=tracking_uri)
    on_loaded(loaded)
    chunks = read_labelled(path, loaded, target, delimiter=delimiter, max_columns=max_columns)
    return evaluate(loaded, chunks, target=target, threshold=threshold)


def evaluate(
    model: Model,
    chunks: Iterable[LabelledChunk],
    *,
    target: str | None = None,
    threshold: float | None = None,
) -> Evaluation:
    """Score every chunk and measure the predictions against the target column."""
    target = _target_of(model, target)
    binary = model.is_classifier and len(model.card.classes or []) == 2
    if threshold is not None:
        if not (binary and model.can_predict_proba):
            raise UsageError("--threshold needs a binary classifier that gives probabilities")
        if not 0.0 < threshold < 1.0:
            raise UsageError(f"--threshold must be between 0 and 1, not {threshold}")
    want_proba = model.can_predict_proba
    truths: list[np.ndarray] = []
    predicted: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    unlabelled = 0
    source = "the data"
    notices: list[str] = []
    for chunk in chunks:
        frame = chunk.frame
        if target not in frame.columns:
            raise DataError(f"no target column '{target}' in the data (use --target to name it)")
        labelled = frame[target].notna().to_numpy()
        unlabelled += int((~labelled).sum())
        source = chunk.source or source
        try:
            features = frame.drop(columns=[target])
            scored = model.predict(features, proba=want_proba, first_row=chunk.first_row)
        except SchemaError as error:
            raise _located(error, chunk) from None
        notices.extend(n for n in scored.notices if n not in notices)
        truths.append(_as_labels(frame[target][labelled], model))
        predicted.append(scored.values[labelled])
        if scored.probabilities is not None:
            probabilities.append(scored.probabilities[labelled])
    y_true = np.concatenate(truths) if truths else np.array([])
    if len(y_true) == 0:
        raise DataError(f"no labelled rows to evaluate (every '{target}' is empty)")
    y_pred = np.concatenate(predicted)
    if unlabelled:
        notices.append(f"skipped {unlabelled} row(s) with no value in '{target}'")
    if not model.is_classifier:
        return Evaluation(
            "regression", target, source, len(y_true), unlabelled,
            regression_metrics(y_true, y_pred), notices=notices,
        )  # fmt: skip
    classes = list(model.card.classes or [])
    evaluation = Evaluation(
        "classification", target, source, len(y_true), unlabelled,
        classification_metrics(y_true, y_pred, labels=classes), notices=notices,
    )  # fmt: skip
    if probabilities:
        proba = np.concatenate(probabilities)
        evaluation.roc_auc = _roc_auc(y_true, proba, classes)
        if binary:
            _add_threshold_view(evaluation, y_true, proba, classes, threshold)
    return evaluation


def _target_of(model: Model, target: str | None) -> str:
    if target:
        return target
    if not model.card.target:
        raise UsageError("the model does not record its target column: name it with --target")
    return model.card.target


def _located(error: SchemaError, chunk: LabelledChunk) -> SchemaError:
    line = None
    if chunk.line_of is not None and error.row is not None:
        line = chunk.line_of(error.row - chunk.first_row)
    return SchemaError(
        error.reason, column=error.column, row=error.row, source=chunk.source, line=line
    )


def _as_labels(target: pd.Series, model: Model) -> np.ndarray:
    """The labelled target values in the type of the model's classes, so '1' and 1 compare equal."""
    if not model.is_classifier:
        numbers = pd.to_numeric(target, errors="coerce")
        bad = numbers.isna() & target.notna()
        if bad.any():
            value = target[bad].iloc[0]
            raise DataError(f"target '{target.name}': {value!r} is not a number")
        return numbers.to_numpy(dtype=np.float64)
    classes = model.card.classes or []
    if classes and all(isinstance(c, str) for c in classes):
        return target.astype(str).to_numpy(dtype=object)
    if classes and all(isinstance(c, int) for c in classes):
        numbers = pd.to_numeric(target, errors="coerce")
        if numbers.isna().any():
            value = target[numbers.isna()].iloc[0]
            raise DataError(f"target '{target.name}': {value!r} is not one of the model's classes")
        return numbers.to_numpy(dtype=np.int64)
    return target.to_numpy(dtype=object)


def _roc_auc(y_true: np.ndarray, proba: np.ndarray, classes: list[Any]) -> float | None:
    from sklearn.metrics import roc_auc_score

    try:
        if len(classes) == 2:
            return float(roc_auc_score(y_true == classes[1], proba[:, 1]))
        return float(roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
    except ValueError:
        # Undefined when the table holds a single class, or misses one.
        return None


def _add_threshold_view(
    evaluation: Evaluation,
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: list[Any],
    threshold: float | None,
) -> None:
    from sklearn.metrics import precision_recall_fscore_support

    positive = classes[1]
    actual = y_true == positive

    def scores_at(cut: float) -> dict[str, float]:
        chosen = proba[:, 1] >= cut
        precision, recall, f1, _ = precision_recall_fscore_support(
            actual, chosen, average="binary", zero_division=0
        )
        return {
            "threshold": cut,
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "accuracy": float(np.mean(actual == chosen)),
            "predicted_positive": int(chosen.sum()),
        }

    evaluation.positive_class = positive
    evaluation.threshold = threshold if threshold is not None else 0.5
    evaluation.at_threshold = scores_at(evaluation.threshold)
    cuts = sorted({*SWEEP_THRESHOLDS, evaluation.threshold})
    evaluation.sweep = [scores_at(cut) for cut in cuts]
