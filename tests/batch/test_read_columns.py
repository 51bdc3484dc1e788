"""Batch scoring without a DataFrame (batch/frames.py `read_columns`, `Model.predict_arrays`):
a chunk read from CSV, cast as arrays, gives the labels and probabilities scikit-learn gives
on the DataFrame `validate` makes of the same chunk, bit for bit, with enough rows for the
one-hot encoder's hashing path, unseen categories, gaps, numbers in category columns and
empty text, its category columns given as they are or as codes into their distinct values
(each distinct row then transformed once); a chunk holding a value to refuse is left to
`validate`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from infer_cli.batch.drift import drift_check
from infer_cli.batch.frames import model_frame, read_coded_columns, read_columns
from infer_cli.core import load_model
from infer_cli.tables.inputs import open_table

ROWS = 600  # above the one-hot encoder's threshold for hashing a column's values


def awkward_csv(source: Path, target: Path, kinds: dict[str, str]) -> None:
    """The sample's new rows repeated to ROWS, every third row with an awkward value in each
    column the model reads: a gap, an unseen category, a number for a category, empty text."""
    with source.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = list(rows[0])
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, names)
        writer.writeheader()
        for index in range(ROWS):
            row = dict(rows[index % len(rows)])
            if index % 3 == 1:
                for name, kind in kinds.items():
                    awkward = {"string": ("never seen", "", "3", "2.5"), "text": ("", "NA")}
                    choices = awkward.get(kind, ("",))
                    row[name] = choices[index // 3 % len(choices)]
            writer.writerow(row)


def first_chunk(path: Path) -> Any:
    with open_table(str(path), batch_size=ROWS) as reader:
        return next(iter(reader)).table


@pytest.mark.parametrize("coded", [False, True], ids=["objects", "coded"])
@pytest.mark.parametrize("data", ["churn", "reviews", "housing"])
def test_a_chunk_as_arrays_scores_as_sklearn_on_its_dataframe(
    trained_models: dict[str, Path], sample_data: Path, tmp_path: Path, data: str, coded: bool
) -> None:
    model = load_model(trained_models[data])
    assert model.route is not None, model.route_note
    kinds = {column.name: column.dtype for column in model.signature.inputs}
    awkward_csv(sample_data / f"{data}_new.csv", tmp_path / "rows.csv", kinds)
    table = first_chunk(tmp_path / "rows.csv")
    proba = model.can_predict_proba

    columns, codes = read_coded_columns(model.signature, table, from_text=True)
    if coded and data == "churn":
        assert {"contract", "internet_service", "payment_method"} <= set(codes)
    got = model.predict_arrays(columns, ROWS, proba=proba, coded=codes if coded else None)
    frame = model.signature.validate(model_frame(model.signature, table, from_text=True)).frame
    assert got is not None
    expected = model.estimator.predict(frame)
    assert got.values.dtype == expected.dtype
    assert got.values.tolist() == expected.tolist()
    if proba:
        expected_proba = model.estimator.predict_proba(frame)
        assert got.probabilities is not None
        assert got.probabilities.dtype == expected_proba.dtype
        assert np.array_equal(got.probabilities, expected_proba)
    check = drift_check(model, None, None)
    if coded and check is not None:  # counted into the training profile's bins alike
        plain = check.bins.codes(columns, got.model_values, ROWS)
        assert np.array_equal(check.bins.codes(columns, got.model_values, ROWS, codes), plain)


def test_a_chunk_with_a_value_to_refuse_is_left_to_validate(
    trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    model = load_model(trained_models["churn"])
    frame = pd.read_csv(sample_data / "churn_new.csv", dtype=str).head(5)
    frame.loc[3, "tenure_months"] = "2.5"  # not a whole number
    frame.to_csv(tmp_path / "rows.csv", index=False)
    columns = read_columns(model.signature, first_chunk(tmp_path / "rows.csv"), from_text=True)
    assert columns["tenure_months"].dtype == np.float64
    assert model.predict_arrays(columns, 5) is None
