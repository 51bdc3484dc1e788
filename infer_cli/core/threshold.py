"""Decision thresholds for binary classifiers: the rule that turns the positive class's
probability into a label, which threshold is in force (an option, a request, the one saved
in the model's card), and how one is chosen on labelled rows to meet a constraint.

`predict`, `serve` and `evaluate` all label rows through `Decision.labels`, so a threshold
gives the same labels wherever the model is used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, ModelError, UsageError

if TYPE_CHECKING:
    from .card import ModelCard

DEFAULT_THRESHOLD = 0.5
"""What a label means without a threshold: the estimator's own `predict`."""
MEASURES = ("precision", "recall", "f1")
CONSTRAINT_FORMS = "precision>=P, recall>=R or f1"


@dataclass(frozen=True)
class Decision:
    """Label a row `classes[positive]` where that class's probability is at least
    `threshold`, the other class elsewhere. `origin` says who set the threshold."""

    threshold: float
    positive: int
    classes: tuple[Any, Any]
    origin: str = "--threshold"

    @property
    def positive_class(self) -> Any:
        return self.classes[self.positive]

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        """One label per row of `probabilities` (one column per class, in `classes` order)."""
        chosen = probabilities[:, self.positive] >= self.threshold
        return np.asarray(self.classes)[np.where(chosen, self.positive, 1 - self.positive)]

    def describe(self) -> str:
        return f"threshold {self.threshold:g} on P({self.positive_class}), from {self.origin}"


def check_threshold(
    value: Any, card: ModelCard, gives_proba: bool, name: str = "--threshold"
) -> float:
    """`value` as a threshold for this model, or a UsageError naming `name` and the reason:
    a model that is not a binary classifier with probabilities, or a value outside (0, 1)."""
    classes = card.classes or []
    if card.task != "classification":
        raise UsageError(f"{name}: a decision threshold is for binary classifiers, not a regressor")
    if len(classes) != 2:
        raise UsageError(
            f"{name}: a decision threshold is for binary classifiers; this model has "
            f"{len(classes)} classes ({_listed(classes)})"
        )
    if not gives_proba:
        raise UsageError(f"{name}: the model gives no class probabilities to set a threshold on")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not 0 < value < 1:
        shown = repr(value) if number else f"a {type(value).__name__}"
        raise UsageError(f"{name} must be a number between 0 and 1 (exclusive), not {shown}")
    return float(value)


def positive_index(classes: Sequence[Any], label: Any, name: str = "--positive-class") -> int:
    """Where `label` (a class, or its text as typed on a command line) is among `classes`."""
    for index, known in enumerate(classes):
        if type(known) is type(label) and known == label:
            return index
    for index, known in enumerate(classes):
        text = str(label)
        if str(known) == text or (isinstance(known, bool) and str(known).lower() == text.lower()):
            return index
    raise UsageError(f"{name} '{label}' is not one of the model's classes ({_listed(classes)})")


def resolve_decision(
    card: ModelCard,
    gives_proba: bool,
    threshold: Any = None,
    positive_class: Any = None,
    *,
    name: str = "--threshold",
    origin: str = "--threshold",
    class_alone: bool = False,
) -> Decision | None:
    """The decision in force: `threshold` if given (for `positive_class`, else the saved
    one's, else the second class), else the one saved in the card, else None (the
    estimator's own labels). A positive class with no threshold to go with it is refused
    unless `class_alone` (for a caller that has another use for it)."""
    saved = saved_decision(card)
    if threshold is None:
        if positive_class is None or saved is None:
            if positive_class is not None:
                check_threshold(DEFAULT_THRESHOLD, card, gives_proba, "--positive-class")
                positive_index(card.classes or [], positive_class)
                if not class_alone:
                    raise UsageError("--positive-class goes with --threshold (or a saved one)")
            return saved
        if positive_index(saved.classes, positive_class) != saved.positive:
            raise UsageError(
                f"the threshold saved in model.json is on P({saved.positive_class}); give "
                f"--threshold for P({positive_class})"
            )
        return saved
    value = check_threshold(threshold, card, gives_proba, name)
    classes = tuple(card.classes or [])
    if positive_class is not None:
        positive = positive_index(classes, positive_class)
    else:
        positive = saved.positive if saved is not None else 1
    return Decision(value, positive, (classes[0], classes[1]), origin)


def saved_decision(card: ModelCard) -> Decision | None:
    """The decision recorded in the card by `evaluate --save`, if any."""
    record = card.decision
    if not record:
        return None
    classes = tuple(card.classes or [])
    try:
        threshold = record["threshold"]
        positive = classes.index(record["positive_class"])
        if (
            len(classes) != 2
            or isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not 0 < threshold < 1
        ):
            raise ValueError(threshold)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"model.json: the saved decision threshold is not valid ({exc!r})"
        ) from exc
    return Decision(float(threshold), positive, (classes[0], classes[1]), "model.json")


@dataclass(frozen=True)
class Constraint:
    """What `evaluate --choose-threshold` asks for: a measure to keep at or above a floor
    while the other is made as high as it goes, or the best F1."""

    measure: str
    floor: float | None = None

    @classmethod
    def parse(cls, text: str) -> Constraint:
        spoken = text.replace(" ", "").lower()
        if spoken == "f1":
            return cls("f1")
        found = re.fullmatch(r"(precision|recall)>=([0-9]*\.?[0-9]+)", spoken)
        floor = float(found.group(2)) if found else math.nan
        if found is None or not 0 < floor <= 1:
            raise UsageError(
                f"--choose-threshold must be {CONSTRAINT_FORMS}, with P and R in (0, 1] "
                f"(got '{text}')"
            )
        return cls(found.group(1), floor)

    def __str__(self) -> str:
        return self.measure if self.floor is None else f"{self.measure}>={self.floor:g}"


@dataclass(frozen=True)
class Choice:
    """A threshold chosen on labelled rows, and the scores it gives there."""

    threshold: float
    precision: float
    recall: float
    f1: float
    constraint: Constraint


def choose_threshold(
    actual: np.ndarray, scores: np.ndarray, constraint: Constraint, source: str = "the data"
) -> Choice:
    """The threshold on `scores` (the positive class's probabilities) that meets
    `constraint` on these rows (`actual`: True where the row is positive) with the best
    value of the other measure. Each candidate splits the rows between two consecutive
    distinct scores, and is the shortest decimal between them, so the same threshold gives
    the same labels on these rows however the probabilities are rounded."""
    actual = np.asarray(actual, dtype=bool)
    positives = int(actual.sum())
    if positives == 0 or positives == len(actual):
        raise DataError(
            f"cannot choose a threshold on {source}: its labelled rows are all of one class"
        )
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    ranked = np.asarray(scores, dtype=np.float64)[order]
    hits = np.cumsum(actual[order])
    # The last row of each run of equal scores: predicting positive down to it is a candidate.
    ends = np.append(np.flatnonzero(np.diff(ranked) != 0), len(ranked) - 1)
    lower = np.append(ranked[ends[:-1] + 1], 0.0)
    keep = lower < ranked[ends]
    ends, lower = ends[keep], lower[keep]
    if len(ends) == 0:
        raise DataError(f"cannot choose a threshold on {source}: every row has the same score")
    true_positive = hits[ends].astype(np.float64)
    predicted = ends + 1.0
    precision = true_positive / predicted
    recall = true_positive / positives
    f1 = 2 * true_positive / (predicted + positives)
    measured = {"precision": precision, "recall": recall, "f1": f1}
    if constraint.floor is None:
        feasible = np.ones(len(ends), dtype=bool)
        goal, second = f1, -predicted
    else:
        held = measured[constraint.measure]
        feasible = held >= constraint.floor - 1e-12
        other = recall if constraint.measure == "precision" else precision
        goal, second = other, held
        if not feasible.any():
            best = int(np.lexsort((-other, -held))[0])
            at = _between(lower[best], ranked[ends[best]])
            raise UsageError(
                f"no threshold gives {constraint} on {source}: the best {constraint.measure} "
                f"reachable is {held[best]:.4f} (at threshold {at:g}, with "
                f"{'recall' if constraint.measure == 'precision' else 'precision'} "
                f"{other[best]:.4f})"
            )
    candidates = np.flatnonzero(feasible)
    # Best goal first; among equals, the better held measure (or the fewer positives).
    best = candidates[np.lexsort((-second[candidates], -goal[candidates]))[0]]
    return Choice(
        _between(lower[best], ranked[ends[best]]),
        float(precision[best]),
        float(recall[best]),
        float(f1[best]),
        constraint,
    )


def _between(low: float, high: float) -> float:
    """The shortest decimal strictly between `low` and `high` (or `high` itself when no
    double lies strictly between them): any of them labels the same rows."""
    low, high = float(low), float(high)
    middle = (low + high) / 2
    for digits in range(1, 18):
        rounded = round(middle, digits)
        if low < rounded < high:
            return rounded
    return middle if low < middle < high else high


def decision_record(
    decision: Decision, chosen_by: str, source: str, rows: int, scores: dict[str, Any]
) -> dict[str, Any]:
    """What `evaluate --save` writes in the card's `decision`: the rule, and how it was
    chosen, on which rows, with which scores there."""
    return {
        "threshold": decision.threshold,
        "positive_class": _plain(decision.positive_class),
        "chosen_by": chosen_by,
        "source": source,
        "rows": rows,
        **{
            measure: scores[measure]
            for measure in ("precision", "recall", "f1")
            if measure in scores
        },
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _listed(classes: Sequence[Any]) -> str:
    shown = ", ".join(str(label) for label in list(classes)[:5])
    return shown + (", ..." if len(classes) > 5 else "")
