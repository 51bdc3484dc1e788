"""Input validation against a model's signature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from infer_cli.errors import SchemaError
from infer_cli.signature import Column, Signature

SIGNATURE = Signature(
    (
        Column("age", "integer"),
        Column("income", "float", required=False),
        Column("plan", "string"),
        Column("note", "text", required=False),
    ),
    passthrough=("customer_id",),
)


def frame(**columns: list) -> pd.DataFrame:
    base = {"age": [30, 40], "income": [1.5, 2.5], "plan": ["a", "b"], "note": ["hi there", "x"]}
    base.update(columns)
    return pd.DataFrame({k: v for k, v in base.items() if v is not None})


def test_reorders_columns_and_ignores_extras_with_one_notice() -> None:
    data = frame()[["plan", "note", "income", "age"]].assign(extra=1, customer_id=["c1", "c2"])
    validated = SIGNATURE.validate(data)
    assert list(validated.frame.columns) == ["age", "income", "plan", "note"]
    assert validated.notices == ["ignoring 1 column(s) the model does not use: extra"]


def test_missing_required_column_names_it_and_lists_expected() -> None:
    with pytest.raises(SchemaError) as caught:
        SIGNATURE.validate(frame(plan=None))
    assert str(caught.value) == "missing column 'plan' (model expects: age, income, plan, note)"
    assert caught.value.column == "plan"


def test_absent_optional_columns_become_missing_values() -> None:
    validated = SIGNATURE.validate(frame(income=None, note=None))
    assert validated.frame["income"].isna().all()
    assert list(validated.frame["note"]) == ["", ""]


def test_value_that_is_not_a_number_names_column_and_row() -> None:
    with pytest.raises(SchemaError) as caught:
        SIGNATURE.validate(frame(income=["1.0", "lots"]), first_row=100)
    error = caught.value
    assert (error.column, error.row) == ("income", 101)
    assert str(error) == "row 102, column 'income': 'lots' is not a number"


def test_located_error_names_file_and_line() -> None:
    with pytest.raises(SchemaError) as caught:
        SIGNATURE.validate(frame(income=["1.0", "lots"]))
    located = caught.value.located("in.csv", first_line=2)
    assert str(located) == "in.csv, line 3, column 'income': 'lots' is not a number"


def test_integers_arriving_as_floats_because_of_a_gap_are_accepted() -> None:
    validated = SIGNATURE.validate(frame(age=[30.0, np.nan]))
    assert validated.frame["age"].iloc[0] == 30.0
    assert np.isnan(validated.frame["age"].iloc[1])


def test_fractional_value_in_an_integer_column_is_refused() -> None:
    with pytest.raises(SchemaError, match=r"row 2, column 'age': '40.5' is not a whole number"):
        SIGNATURE.validate(frame(age=[30.0, 40.5]))


def test_numbers_as_text_and_blanks_are_read() -> None:
    validated = SIGNATURE.validate(frame(age=["30", " "], income=["2.5", ""]))
    assert validated.frame["age"].iloc[0] == 30.0
    assert validated.frame[["age", "income"]].iloc[1].isna().all()


def test_categories_read_as_numbers_match_their_training_spelling() -> None:
    validated = SIGNATURE.validate(frame(plan=[3.0, np.nan]))
    assert validated.frame["plan"].iloc[0] == "3"
    assert pd.isna(validated.frame["plan"].iloc[1])


def test_round_trips_through_json_form() -> None:
    assert Signature.from_dict(SIGNATURE.to_dict()) == SIGNATURE
