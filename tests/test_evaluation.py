"""`evaluate`: quality on a labelled table agrees with scikit-learn on the same predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from infer_cli.errors import DataError, UsageError
from infer_cli.evaluation import evaluate
from infer_cli.model import load_model


def chunks(frame: pd.DataFrame, size: int) -> list[tuple[pd.DataFrame, int]]:
    return [(frame.iloc[i : i + size], i) for i in range(0, len(frame), size)]


def test_classification_metrics_match_sklearn_across_chunks(
    trained_models: dict[str, Path], sample_data: Path
) -> None:
    model = load_model(trained_models["churn"])
    table = pd.read_csv(sample_data / "churn.csv")
    evaluation = evaluate(model, chunks(table, 128))
    predicted = model.predict(table, proba=True)
    truth = table["churned"].to_numpy()
    metrics = evaluation.metrics
    assert evaluation.rows == len(table)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted.values))
    assert metrics["macro"]["f1"] == pytest.approx(
        f1_score(truth, predicted.values, average="macro")
    )
    assert metrics["per_class"]["yes"]["recall"] == pytest.approx(
        recall_score(truth, predicted.values, pos_label="yes")
    )
    assert predicted.probabilities is not None
    assert evaluation.roc_auc == pytest.approx(
        roc_auc_score(truth == "yes", predicted.probabilities[:, 1])
    )


def test_threshold_moves_precision_and_recall(
    trained_models: dict[str, Path], sample_data: Path
) -> None:
    model = load_model(trained_models["churn"])
    table = pd.read_csv(sample_data / "churn.csv")
    low = evaluate(model, chunks(table, 500), threshold=0.25)
    high = evaluate(model, chunks(table, 500), threshold=0.75)
    assert low.at_threshold is not None and high.at_threshold is not None
    assert low.at_threshold["recall"] > high.at_threshold["recall"]
    assert low.at_threshold["precision"] < high.at_threshold["precision"]
    proba = model.predict(table, proba=True).probabilities
    assert proba is not None
    chosen = proba[:, 1] >= 0.25
    actual = table["churned"].to_numpy() == "yes"
    assert low.at_threshold["precision"] == pytest.approx(precision_score(actual, chosen))
    assert low.at_threshold["predicted_positive"] == int(chosen.sum())
    assert 0.25 in [point["threshold"] for point in low.sweep]


def test_multiclass_has_no_threshold_but_has_roc_auc(
    trained_models: dict[str, Path], sample_data: Path
) -> None:
    model = load_model(trained_models["iris"])
    table = pd.read_csv(sample_data / "iris.csv")
    evaluation = evaluate(model, chunks(table, 40))
    assert evaluation.sweep == []
    assert evaluation.roc_auc is not None and evaluation.roc_auc > 0.95
    with pytest.raises(UsageError, match="--threshold needs a binary classifier"):
        evaluate(model, chunks(table, 40), threshold=0.3)


def test_regression_metrics_match_sklearn(
    trained_models: dict[str, Path], sample_data: Path
) -> None:
    model = load_model(trained_models["housing"])
    table = pd.read_csv(sample_data / "housing.csv")
    evaluation = evaluate(model, chunks(table, 300))
    predicted = model.predict(table).values
    assert evaluation.metrics["mae"] == pytest.approx(
        mean_absolute_error(table["price"], predicted)
    )
    assert evaluation.metrics["r2"] == pytest.approx(r2_score(table["price"], predicted))
    assert "roc_auc" not in evaluation.to_json()


def test_rows_without_a_label_are_skipped_and_counted(
    trained_models: dict[str, Path], sample_data: Path
) -> None:
    model = load_model(trained_models["iris"])
    table = pd.read_csv(sample_data / "iris.csv")
    table.loc[[3, 77], "species"] = np.nan
    evaluation = evaluate(model, chunks(table, 50))
    assert (evaluation.rows, evaluation.unlabelled_rows) == (148, 2)
    assert "skipped 2 row(s) with no value in 'species'" in evaluation.notices


def test_missing_target_column_is_a_data_error(
    trained_models: dict[str, Path], sample_data: Path
) -> None:
    model = load_model(trained_models["iris"])
    table = pd.read_csv(sample_data / "iris_new.csv")
    with pytest.raises(DataError, match="no target column 'species'"):
        evaluate(model, chunks(table, 50))
