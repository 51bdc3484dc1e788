"""Training on each sample set: column roles, task detection, quality, and user errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from infer_cli.core import load_model
from infer_cli.errors import DataError, UsageError
from infer_cli.training import TrainOptions, detect_task, train


def test_iris_is_classified_accurately(trained_models: dict[str, Path]) -> None:
    card = load_model(trained_models["iris"]).card
    assert card.task == "classification"
    assert card.metrics["accuracy"] >= 0.9
    assert card.metrics["macro"]["f1"] >= 0.9
    matrix = card.metrics["confusion_matrix"]
    assert matrix["labels"] == ["setosa", "versicolor", "virginica"]
    assert sum(map(sum, matrix["matrix"])) == card.metrics["rows"] == 30


def test_churn_leaves_out_the_identifier_and_handles_missing_values(
    trained_models: dict[str, Path],
) -> None:
    card = load_model(trained_models["churn"]).card
    assert "customer_id" not in card.signature.names
    assert card.signature.passthrough == ("customer_id",)
    optional = {c.name for c in card.signature.inputs if not c.required}
    assert optional == {"total_charges", "payment_method"}
    types = {c.name: c.dtype for c in card.signature.inputs}
    assert types["contract"] == "string"
    assert types["tenure_months"] == "integer"
    assert card.metrics["accuracy"] >= 0.72
    assert set(card.metrics["per_class"]) == {"no", "yes"}


def test_reviews_text_column_is_vectorized(trained_models: dict[str, Path]) -> None:
    card = load_model(trained_models["reviews"]).card
    assert card.signature.text_columns == ["review"]
    assert card.signature.passthrough == ("review_id",)
    assert card.metrics["accuracy"] >= 0.85


def test_housing_is_a_regression(trained_models: dict[str, Path]) -> None:
    card = load_model(trained_models["housing"]).card
    assert card.task == "regression"
    assert card.classes is None
    assert card.metrics["r2"] >= 0.75
    assert card.metrics["rmse"] >= card.metrics["mae"] > 0


@pytest.mark.parametrize("model", ["forest", "gbm"])
def test_tree_models_train_on_mixed_columns(sample_data: Path, model: str) -> None:
    frame = pd.read_csv(sample_data / "churn.csv")
    result = train(frame, TrainOptions(target="churned", algorithm=model))
    assert result.card.metrics["accuracy"] >= 0.7


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["a", "b", "a"], "classification"),
        ([0, 1, 1, 0], "classification"),
        ([True, False, True], "classification"),
        ([1.5, 2.25, 3.0], "regression"),
        (list(range(100)), "regression"),
    ],
)
def test_task_is_detected_from_the_target(values: list, task: str) -> None:
    assert detect_task(pd.Series(values)) == task


def test_text_column_and_ignore_are_honoured(sample_data: Path) -> None:
    frame = pd.read_csv(sample_data / "churn.csv")
    result = train(
        frame,
        TrainOptions(target="churned", text_columns=("payment_method",), ignore=("contract",)),
    )
    assert result.roles.text == ["payment_method"]
    assert "contract" not in result.card.signature.names
    assert "contract" in result.card.signature.passthrough


def test_single_class_target_is_refused() -> None:
    frame = pd.DataFrame({"x": range(10), "y": ["same"] * 10})
    with pytest.raises(DataError, match="target 'y' has a single class \\('same'\\)"):
        train(frame, TrainOptions(target="y"))


def test_unknown_target_lists_the_columns() -> None:
    frame = pd.DataFrame({"x": range(10), "y": [0, 1] * 5})
    with pytest.raises(UsageError, match=r"no target column 'z' in the data \(columns: x, y\)"):
        train(frame, TrainOptions(target="z"))


def test_model_that_does_not_fit_the_task_is_refused() -> None:
    frame = pd.DataFrame({"x": range(10), "y": [0, 1] * 5})
    with pytest.raises(UsageError, match="--algorithm ridge is for regression"):
        train(frame, TrainOptions(target="y", algorithm="ridge"))


def test_rows_without_a_target_are_dropped_with_a_notice() -> None:
    frame = pd.DataFrame({"x": range(20), "y": ([0, 1] * 9) + [None, None]})
    result = train(frame, TrainOptions(target="y"))
    assert result.rows_dropped == 2
    assert result.notices == ["dropped 2 row(s) with no value in target 'y'"]
