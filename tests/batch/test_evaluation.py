"""`evaluate`: quality on a labelled table agrees with scikit-learn on the same predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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

from infer_cli.batch.evaluation import LabelledChunk, evaluate
from infer_cli.core import load_model
from infer_cli.errors import DataError, UsageError


def chunks(frame: pd.DataFrame, size: int) -> list[LabelledChunk]:
    return [LabelledChunk(frame.iloc[i : i + size], i) for i in range(0, len(frame), size)]


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
    # The headline metrics and confusion matrix are those at the threshold, too.
    assert low.metrics["per_class"]["yes"]["precision"] == pytest.approx(
        precision_score(actual, chosen)
    )
    predicted_yes = sum(row[1] for row in low.metrics["confusion_matrix"]["matrix"])
    assert predicted_yes == int(chosen.sum())


def test_multiclass_has_no_threshold_but_has_roc_auc(
    trained_models: dict[str, Path], sample_data: Path
) -> None:
    model = load_model(trained_models["iris"])
    table = pd.read_csv(sample_data / "iris.csv")
    evaluation = evaluate(model, chunks(table, 40))
    assert evaluation.sweep == []
    assert evaluation.roc_auc is not None and evaluation.roc_auc > 0.95
    with pytest.raises(UsageError, match="--threshold: a decision threshold is for binary"):
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


def test_evaluate_command_matches_sklearn_on_the_predictions_predict_writes(
    cli: Any, trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    scored = tmp_path / "scored.csv"
    predicted = cli(
        "predict", "-m", trained_models["reviews"], "-i", sample_data / "reviews.csv",
        "-o", scored, "--proba", "--quiet",
    )  # fmt: skip
    assert predicted.exit_code == 0, predicted.output
    result = cli(
        "evaluate", "-m", trained_models["reviews"], "-i", sample_data / "reviews.csv", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = pd.read_csv(scored)
    truth, labels = rows["sentiment"], rows["prediction"]
    assert report["rows"] == len(rows)
    assert report["metrics"]["accuracy"] == pytest.approx(accuracy_score(truth, labels))
    assert report["metrics"]["macro"]["precision"] == pytest.approx(
        precision_score(truth, labels, average="macro")
    )
    assert report["roc_auc"] == pytest.approx(
        roc_auc_score(truth == "positive", rows["proba_positive"]), abs=1e-6
    )
    assert report["threshold"] == 0.5


def test_evaluate_report_shows_the_threshold_trade_off(
    cli: Any, trained_models: dict[str, Path], sample_data: Path
) -> None:
    result = cli(
        "evaluate", "-m", trained_models["churn"], "-i", sample_data / "churn.csv",
        "--threshold", "0.3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for text in ("Metrics on churn.csv", "ROC AUC", "Decision threshold on P(yes)", "in use: 0.3"):
        assert text in result.stderr
    assert "ignoring" not in result.stderr


def test_evaluate_names_the_line_of_a_bad_value(
    cli: Any, trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    lines = (sample_data / "iris.csv").read_text().splitlines(keepends=True)
    lines[41] = lines[41].replace(lines[41].split(",")[1], "wide", 1)
    broken = tmp_path / "broken.csv"
    broken.write_text("".join(lines))
    result = cli("evaluate", "-m", trained_models["iris"], "-i", broken)
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        f"infer-cli: error: {broken}, line 42, column 'sepal_width': 'wide' is not a number"
    )


def test_evaluate_without_the_target_column_is_a_data_error(
    cli: Any, trained_models: dict[str, Path], sample_data: Path
) -> None:
    result = cli("evaluate", "-m", trained_models["iris"], "-i", sample_data / "iris_new.csv")
    assert result.exit_code == 3
    assert "no target column 'species'" in result.stderr
