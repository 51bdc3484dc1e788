"""Evaluation: a model's quality on a labelled table, scored chunk by chunk as `predict` does."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.decision_store import decision_card, save_decision
from ..core.metrics import classification_metrics, regression_metrics
from ..core.model import Model
from ..core.store import load_model
from ..core.threshold import (
    DEFAULT_THRESHOLD,
    Constraint,
    Decision,
    check_threshold,
    choose_threshold,
    decision_record,
    positive_index,
)
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
    delimiter: str | None = None,
    input_format: str | None = None,
    batch_size: int = DEFAULT_BATCH_ROWS,
    max_columns: int = MAX_COLUMNS,
) -> Iterator[LabelledChunk]:
    """Stream a labelled file as `predict` reads it: the model's columns and the target."""
    from ..tables.inputs import open_table
    from .frames import model_frame, text_to_objects

    target = _target_of(model, target)
    with open_table(
        path, format=input_format, delimiter=delimiter, batch_size=batch_size,
        max_columns=max_columns,
    ) as reader:  # fmt: skip
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
    decision: Decision | None = None
    """The decision threshold the labels were given at; None for the model's own labels."""
    chosen_by: str | None = None
    """The constraint `--choose-threshold` chose the threshold by."""
    saved_to: str | None = None
    """The card the threshold was recorded in (`--save`)."""

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
            document["positive_class"] = _plain(self.positive_class)
            document["threshold"] = self.threshold
            document["threshold_from"] = self.decision.origin if self.decision else None
            document["at_threshold"] = self.at_threshold
            document["threshold_sweep"] = self.sweep
            if self.chosen_by is not None:
                document["chosen_by"] = self.chosen_by
            document["saved_to"] = self.saved_to
        return document


def evaluate_file(
    path: str,
    model: str | None,
    *,
    target: str | None = None,
    threshold: float | None = None,
    positive_class: str | None = None,
    choose: str | None = None,
    save: bool = False,
    delimiter: str | None = None,
    input_format: str | None = None,
    max_columns: int = MAX_COLUMNS,
    trust_types: list[str] | None = None,
    tracking_uri: str | None = None,
    on_loaded: Callable[[Model], None] = lambda _: None,
) -> Evaluation:
    """The `evaluate` command: load the model, stream the labelled file through it and
    measure; `on_loaded` sees the model before its rows are read. With `save`, the
    threshold labelled at (`threshold`, or the one `choose` found) is recorded in the
    model's card, which is checked to exist before anything is read."""
    if save:
        if threshold is None and choose is None:
            raise UsageError("--save records a threshold: give --choose-threshold or --threshold")
        decision_card(model)
    loaded = load_model(model, trust_types=trust_types, tracking_uri=tracking_uri)
    on_loaded(loaded)
    chunks = read_labelled(
        path, loaded, target, delimiter=delimiter, input_format=input_format,
        max_columns=max_columns,
    )  # fmt: skip
    evaluation = evaluate(
        loaded, chunks, target=target, threshold=threshold, positive_class=positive_class,
        choose=choose,
    )  # fmt: skip
    if save:
        evaluation.saved_to = str(save_threshold(model, evaluation, loaded.card.sha256))
    return evaluation


def evaluate(
    model: Model,
    chunks: Iterable[LabelledChunk],
    *,
    target: str | None = None,
    threshold: float | None = None,
    positive_class: str | None = None,
    choose: str | None = None,
) -> Evaluation:
    """Score every chunk and measure the predictions against the target column, labelled
    at the decision threshold in force (`threshold`, else the card's), or at the one
    `choose` (a `Constraint`, such as 'precision>=0.9') finds on these rows."""
    target = _target_of(model, target)
    constraint = None
    if choose is not None:
        if threshold is not None:
            raise UsageError("give --threshold or --choose-threshold, not both")
        constraint = Constraint.parse(choose)
        check_threshold(
            DEFAULT_THRESHOLD, model.card, model.can_predict_proba, "--choose-threshold"
        )
        saved = model.decision()
        chosen_for = _positive(model.card.classes or [], positive_class, saved)
        # Labelled once the threshold is chosen, from the probabilities.
        decision = None
    else:
        decision = model.decision(threshold, positive_class, class_alone=True)
    binary = model.is_classifier and len(model.card.classes or []) == 2
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
            scored = model.predict(
                features, proba=want_proba, first_row=chunk.first_row, decision=decision
            )
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
    proba = np.concatenate(probabilities) if probabilities else None
    if y_true.dtype == object and classes and not all(isinstance(c, str) for c in classes):
        # Labels that are not even of the classes' type: compared as text, every one of them.
        named = [str(c) for c in classes]
    else:
        named = classes
    known = np.isin(y_true, np.array(named, dtype=object))
    unseen = sorted(set(y_true[~known].tolist()), key=str)
    if unseen:
        names = ", ".join(repr(label) for label in unseen[:10])
        names += f" and {len(unseen) - 10:,} more" if len(unseen) > 10 else ""
        notices.append(
            f"{int((~known).sum()):,} row(s) carry a label the model never saw ({names}): "
            "each is counted as wrong, in its own row of the confusion matrix"
        )
    if constraint is not None and proba is not None:
        # Probabilities rank the model's own classes: rows of other labels have no place there.
        choice = choose_threshold(
            y_true[known] == named[chosen_for],
            proba[known][:, chosen_for],
            constraint,
            os.path.basename(source),
        )
        decision = Decision(
            choice.threshold,
            chosen_for,
            (classes[0], classes[1]),
            f"--choose-threshold {constraint}",
        )
        y_pred = decision.labels(proba)
    if named is not classes:
        y_pred = y_pred.astype(str)
    evaluation = Evaluation(
        "classification", target, source, len(y_true), unlabelled,
        classification_metrics(y_true, y_pred, labels=[*named, *unseen]), notices=notices,
    )  # fmt: skip
    evaluation.decision = decision
    evaluation.chosen_by = str(constraint) if constraint is not None else None
    if proba is not None:
        evaluation.roc_auc = roc_auc(y_true[known], proba[known], named)
        if binary:
            positive = decision.positive if decision else _positive(classes, positive_class)
            add_threshold_view(evaluation, y_true[known], proba[known], named, positive)
    return evaluation


def save_threshold(reference: str | None, evaluation: Evaluation, sha256: str) -> Path:
    """Record the threshold `evaluation` labelled at in the card of the model at `reference`
    (the model whose file has `sha256`), with how it was chosen and its scores there."""
    decision = evaluation.decision
    if decision is None:
        raise UsageError("--save records a threshold: give --choose-threshold or --threshold")
    record = decision_record(
        decision,
        evaluation.chosen_by or "--threshold",
        os.path.basename(evaluation.source),
        evaluation.rows,
        evaluation.at_threshold or {},
    )
    return save_decision(reference, record, sha256)


def _positive(classes: list[Any], label: Any, saved: Decision | None = None) -> int:
    """The positive class's place: the one named, else the saved decision's, else the second."""
    if label is not None:
        return positive_index(classes, label)
    return saved.positive if saved is not None else 1


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


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
        whole = numbers.notna() & (numbers == np.floor(numbers)) & (numbers.abs() < 2.0**63)
        if not whole.all():
            # Not a class the model knows: the evaluation counts such labels as text.
            return target.astype(str).to_numpy(dtype=object)
        return numbers.to_numpy(dtype=np.int64)
    return target.to_numpy(dtype=object)


def roc_auc(y_true: np.ndarray, proba: np.ndarray, classes: list[Any]) -> float | None:
    from sklearn.metrics import roc_auc_score

    # Undefined when the table holds a single class (scikit-learn warns and answers NaN).
    if len(set(y_true.tolist())) < 2:
        return None
    try:
        if len(classes) == 2:
            return float(roc_auc_score(y_true == classes[1], proba[:, 1]))
        return float(roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
    except ValueError:
        # Or when it misses one of the model's classes.
        return None


def add_threshold_view(
    evaluation: Evaluation,
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: list[Any],
    positive: int,
) -> None:
    from sklearn.metrics import precision_recall_fscore_support

    actual = y_true == classes[positive]

    def scores_at(cut: float) -> dict[str, float]:
        chosen = proba[:, positive] >= cut
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

    decision = evaluation.decision
    evaluation.positive_class = classes[positive]
    evaluation.threshold = decision.threshold if decision else DEFAULT_THRESHOLD
    evaluation.at_threshold = scores_at(evaluation.threshold)
    cuts = sorted({*SWEEP_THRESHOLDS, evaluation.threshold})
    evaluation.sweep = [scores_at(cut) for cut in cuts]
