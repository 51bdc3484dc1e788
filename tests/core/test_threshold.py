"""Decision thresholds: the labels a threshold gives, which threshold is in force, the
refusals, and a threshold chosen on labelled rows to meet a constraint."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from infer_cli.core import Column, ModelCard, Signature
from infer_cli.core.threshold import (
    Constraint,
    Decision,
    check_threshold,
    choose_threshold,
    positive_index,
    resolve_decision,
)
from infer_cli.errors import DataError, ExitCode, ModelError, UsageError


def _card(classes: list[Any] | None, task: str = "classification", **decision: Any) -> ModelCard:
    return ModelCard(
        task=task,
        target="y",
        classes=classes,
        signature=Signature((Column("x", "float"),)),
        decision=decision,
    )


PROBABILITIES = np.array([[0.9, 0.1], [0.45, 0.55], [0.4, 0.6], [0.2, 0.8]])


def test_a_threshold_labels_the_positive_class_at_or_above_it() -> None:
    decision = Decision(0.6, 1, ("no", "yes"))
    assert decision.labels(PROBABILITIES).tolist() == ["no", "no", "yes", "yes"]
    on_the_first_class = Decision(0.5, 0, ("no", "yes"))
    assert on_the_first_class.labels(PROBABILITIES).tolist() == ["no", "yes", "yes", "yes"]
    numbers = Decision(0.5, 1, (0, 1)).labels(PROBABILITIES)
    assert numbers.tolist() == [0, 1, 1, 1] and numbers.dtype.kind == "i"


def test_the_threshold_in_force_is_the_given_one_then_the_saved_one_then_none() -> None:
    plain = _card(["no", "yes"])
    assert resolve_decision(plain, True) is None
    given = resolve_decision(plain, True, 0.6)
    assert given == Decision(0.6, 1, ("no", "yes"), "--threshold")
    saved = _card(["no", "yes"], threshold=0.7, positive_class="no")
    assert resolve_decision(saved, True) == Decision(0.7, 0, ("no", "yes"), "model.json")
    # A threshold given keeps the saved one's positive class unless told otherwise.
    assert resolve_decision(saved, True, 0.3) == Decision(0.3, 0, ("no", "yes"))
    assert resolve_decision(saved, True, 0.3, "yes") == Decision(0.3, 1, ("no", "yes"))
    assert resolve_decision(saved, True, None, "no") == resolve_decision(saved, True)


@pytest.mark.parametrize(
    ("card", "value", "message"),
    [
        (_card(None, "regression"), 0.6, "--threshold: a decision threshold is for binary "
         "classifiers, not a regressor"),
        (_card(["a", "b", "c"]), 0.6, "--threshold: a decision threshold is for binary "
         "classifiers; this model has 3 classes (a, b, c)"),
        (_card(["no", "yes"]), 0.0, "--threshold must be a number between 0 and 1 (exclusive), "
         "not 0.0"),
        (_card(["no", "yes"]), 1, "--threshold must be a number between 0 and 1 (exclusive), "
         "not 1"),
        (_card(["no", "yes"]), math.nan, "not nan"),
        (_card(["no", "yes"]), True, "not a bool"),
        (_card(["no", "yes"]), "0.6", "not a str"),
    ],
)  # fmt: skip
def test_thresholds_that_do_not_fit_are_usage_errors(
    card: ModelCard, value: Any, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        check_threshold(value, card, gives_proba=True)
    assert caught.value.message.endswith(message) or message in caught.value.message
    assert caught.value.exit_code == ExitCode.USAGE and caught.value.http_status == 400


def test_a_model_without_probabilities_takes_no_threshold() -> None:
    with pytest.raises(UsageError, match="gives no class probabilities"):
        check_threshold(0.6, _card(["no", "yes"]), gives_proba=False)


def test_positive_classes_are_found_by_value_or_by_their_text() -> None:
    assert positive_index(["no", "yes"], "no") == 0
    assert positive_index([0, 1], "1") == 1
    assert positive_index([False, True], "true") == 1
    with pytest.raises(UsageError, match=r"--positive-class 'maybe' is not one of the model's "
                       r"classes \(no, yes\)"):  # fmt: skip
        positive_index(["no", "yes"], "maybe")


def test_a_positive_class_needs_a_threshold_to_go_with() -> None:
    with pytest.raises(UsageError, match="--positive-class goes with --threshold"):
        resolve_decision(_card(["no", "yes"]), True, None, "yes")
    assert resolve_decision(_card(["no", "yes"]), True, None, "yes", class_alone=True) is None
    saved = _card(["no", "yes"], threshold=0.7, positive_class="yes")
    with pytest.raises(UsageError, match=r"saved in model.json is on P\(yes\)"):
        resolve_decision(saved, True, None, "no")


def test_a_saved_threshold_that_makes_no_sense_is_a_model_error() -> None:
    for record in ({"threshold": 2, "positive_class": "yes"}, {"threshold": 0.5}):
        with pytest.raises(ModelError, match="saved decision threshold is not valid"):
            resolve_decision(_card(["no", "yes"], **record), True)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("precision>=0.9", Constraint("precision", 0.9)),
        (" Recall >= .75 ", Constraint("recall", 0.75)),
        ("f1", Constraint("f1")),
    ],
)
def test_constraints_are_read(text: str, parsed: Constraint) -> None:
    assert Constraint.parse(text) == parsed


@pytest.mark.parametrize("text", ["precision>0.9", "accuracy>=0.9", "recall>=1.5", "recall>=0"])
def test_other_constraints_are_usage_errors(text: str) -> None:
    with pytest.raises(
        UsageError, match="--choose-threshold must be precision>=P, recall>=R or f1"
    ):
        Constraint.parse(text)


def _brute_force(actual: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    chosen = scores >= threshold
    hits = int((chosen & actual).sum())
    precision = hits / chosen.sum() if chosen.sum() else 0.0
    recall = hits / actual.sum()
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * hits / (chosen.sum() + actual.sum()),
    }


def test_the_chosen_threshold_is_the_best_of_every_threshold_that_meets_the_constraint() -> None:
    rng = np.random.default_rng(3)
    actual = rng.random(400) < 0.35
    # Scores that rank the positives higher, with ties, as a forest's votes give.
    scores = np.clip(np.round(0.35 * actual + rng.random(400) * 0.65, 2), 0, 1)
    every = sorted(set(scores.tolist()))
    for constraint in (Constraint("precision", 0.8), Constraint("recall", 0.9), Constraint("f1")):
        choice = choose_threshold(actual, scores, constraint)
        assert 0 < choice.threshold < 1
        measured = _brute_force(actual, scores, choice.threshold)
        assert measured == pytest.approx(
            {"precision": choice.precision, "recall": choice.recall, "f1": choice.f1}
        )
        feasible = [
            _brute_force(actual, scores, cut)
            for cut in every
            if cut > 0
            and (
                constraint.floor is None
                or _brute_force(actual, scores, cut)[constraint.measure] >= constraint.floor
            )
        ]
        goal = {"precision": "recall", "recall": "precision", "f1": "f1"}[constraint.measure]
        assert measured[goal] == pytest.approx(max(point[goal] for point in feasible))
        if constraint.floor is not None:
            assert measured[constraint.measure] >= constraint.floor


def test_the_chosen_threshold_is_a_short_decimal_between_two_scores() -> None:
    actual = np.array([True, True, False, True, False, False])
    scores = np.array([0.91234, 0.8, 0.71, 0.6, 0.3, 0.2])
    choice = choose_threshold(actual, scores, Constraint("precision", 1.0))
    # Down to 0.8 every row predicted positive is positive; 0.71 is not.
    assert 0.71 < choice.threshold < 0.8 and len(repr(choice.threshold)) <= 4
    assert (choice.precision, choice.recall) == (1.0, pytest.approx(2 / 3))
    every_positive = choose_threshold(actual, scores, Constraint("recall", 1.0))
    assert 0.3 < every_positive.threshold < 0.6 and len(repr(every_positive.threshold)) <= 3
    assert every_positive.precision == 0.75


def test_an_unsatisfiable_constraint_says_the_best_value_reachable() -> None:
    actual = np.array([False, True, False, True])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    with pytest.raises(UsageError) as caught:
        choose_threshold(actual, scores, Constraint("precision", 0.9), "holdout.csv")
    assert caught.value.message == (
        "no threshold gives precision>=0.9 on holdout.csv: the best precision reachable is "
        "0.5000 (at threshold 0.3, with recall 1.0000)"
    )


def test_rows_of_one_class_cannot_choose_a_threshold() -> None:
    with pytest.raises(DataError, match="all of one class"):
        choose_threshold(np.array([True, True]), np.array([0.2, 0.7]), Constraint("f1"))
