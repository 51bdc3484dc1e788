"""Input validation against a model's signature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from infer_cli.core.signature import BadRow, Column, Signature
from infer_cli.errors import SchemaError

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


def test_bad_rows_finds_every_refused_row_once_in_row_order() -> None:
    data = frame(
        age=[30, "x", 40.5, "y"],
        income=[1.0, "lots", 2.0, 3.0],
        plan=["a", "b", "c", "d"],
        note=["w", "x", "y", "z"],
    )
    assert SIGNATURE.bad_rows(data) == [
        BadRow(1, "age", "'x' is not a number"),
        BadRow(2, "age", "'40.5' is not a whole number"),
        BadRow(3, "age", "'y' is not a number"),
    ]
    assert SIGNATURE.bad_rows(frame()) == []


def test_bad_rows_raises_what_is_wrong_with_the_whole_frame() -> None:
    with pytest.raises(SchemaError, match="missing column 'plan'"):
        SIGNATURE.bad_rows(frame(plan=None))


PINNED = Signature(
    (
        Column("count", "integer", numpy_dtype="int64"),
        Column("small", "integer", numpy_dtype="int32"),
        Column("ratio", "float", numpy_dtype="float32"),
        Column("flag", "boolean"),
    )
)


def test_pinned_columns_reach_the_model_in_their_dtype() -> None:
    data = pd.DataFrame(
        {"count": ["3", "4.0"], "small": [1, 2], "ratio": [0.1, 2.0], "flag": ["True", "0"]}
    )
    validated = PINNED.validate(data).frame
    assert validated.dtypes.astype(str).tolist() == ["int64", "int32", "float32", "bool"]
    assert validated["count"].tolist() == [3, 4]
    assert validated["ratio"].iloc[0] == np.float32(0.1)
    assert validated["flag"].tolist() == [True, False]


def test_gap_or_overflow_in_a_pinned_integer_column_names_row_and_column() -> None:
    data = pd.DataFrame({"count": [1, None], "small": [1, 2], "ratio": [0.5, 0.5]})
    with pytest.raises(SchemaError) as caught:
        PINNED.validate(data.assign(flag=[True, False]), first_row=10)
    assert str(caught.value) == (
        "row 12, column 'count': missing value (the model takes whole numbers here, with no gaps)"
    )
    data = pd.DataFrame({"count": [1], "small": [2**40], "ratio": [0.5], "flag": [True]})
    with pytest.raises(SchemaError, match=r"row 1, column 'small': '1099511627776' is too large"):
        PINNED.validate(data)


@pytest.mark.parametrize(("value", "size"), [(300, "large"), (-5, "small")])
def test_a_value_beyond_an_unsigned_column_is_refused_not_wrapped(value: int, size: str) -> None:
    """numpy's cast would make 300 into 44 and -5 into 251 for a uint8 column."""
    unsigned = Signature((Column("level", "integer", numpy_dtype="uint8"),))
    with pytest.raises(SchemaError, match=rf"row 1, column 'level': '{value}' is too {size}"):
        unsigned.validate(pd.DataFrame({"level": [value]}))
    assert unsigned.arrays({"level": [value]}, 1) is None  # a request takes `validate`
    assert unsigned.arrays({"level": [7]}, 1)["level"].dtype == np.uint8


@pytest.mark.parametrize("values", [[3, -7, 0], [2**53, -(2**53)], [2**53 + 1, 2**62 + 1]])
def test_whole_numbers_in_a_request_reach_a_pinned_column_as_validate_gives_them(
    values: list[int],
) -> None:
    rows = len(values)
    columns = {"count": values, "small": [1] * rows, "ratio": [0.5] * rows, "flag": [True] * rows}
    arrays = PINNED.arrays(columns, rows)
    validated = PINNED.validate(pd.DataFrame(columns)).frame
    assert arrays is not None
    assert arrays["count"].tolist() == validated["count"].tolist()
    assert arrays["count"].dtype == validated["count"].dtype == np.int64


def test_boolean_column_refuses_what_is_not_true_or_false_and_keeps_gaps() -> None:
    data = pd.DataFrame({"count": [1, 2], "small": [1, 2], "ratio": [0.5, 0.5]})
    with pytest.raises(SchemaError, match="row 2, column 'flag': 'maybe' is not true or false"):
        PINNED.validate(data.assign(flag=[True, "maybe"]))
    gaps = PINNED.validate(data.assign(flag=[None, "FALSE"])).frame["flag"]
    assert gaps.dtype == object and np.isnan(gaps.iloc[0]) and gaps.iloc[1] is False
    assert Column.from_dict(PINNED.inputs[0].to_dict()) == PINNED.inputs[0]
    assert "numpy_dtype" not in SIGNATURE.inputs[0].to_dict()
