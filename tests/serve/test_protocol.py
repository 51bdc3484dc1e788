"""The wire formats: every request shape decodes to the same rows; every bad body is refused."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd
import pytest

from infer_cli.errors import DataError, SchemaError
from infer_cli.serve import protocol, tensors
from infer_cli.serve.errors import UnsupportedMediaType

NAMES = ["a", "b"]
EXPECTED = {"a": [1.5, 3.0], "b": ["x", "y"]}


def _parquet() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame(EXPECTED).to_parquet(buffer)
    return buffer.getvalue()


def _json(document: object) -> bytes:
    return json.dumps(document).encode()


SHAPES = {
    "dataframe_split": _json(
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, "x"], [3.0, "y"]]}}
    ),
    "dataframe_split with index": _json(
        {
            "dataframe_split": {
                "index": [7, 8],
                "columns": ["a", "b"],
                "data": [[1.5, "x"], [3, "y"]],
            }
        }
    ),
    "dataframe_split without columns": _json({"dataframe_split": {"data": [[1.5, "x"], [3, "y"]]}}),
    "dataframe_records": _json({"dataframe_records": [{"a": 1.5, "b": "x"}, {"b": "y", "a": 3}]}),
    "instances as records": _json({"instances": [{"a": 1.5, "b": "x"}, {"a": 3.0, "b": "y"}]}),
    "instances as columns": _json({"instances": {"a": [1.5, 3.0], "b": ["x", "y"]}}),
    "inputs as rows": _json({"inputs": [[1.5, "x"], [3.0, "y"]]}),
    "inputs as columns": _json({"inputs": {"a": [1.5, 3.0], "b": ["x", "y"]}}),
    "MLflow 1.x data as rows": _json({"data": [[1.5, "x"], [3.0, "y"]]}),
    "MLflow 1.x split document": _json(
        {"columns": ["b", "a"], "data": [["x", 1.5], ["y", 3.0]], "index": [0, 1]}
    ),
    "MLflow 1.x records list": _json([{"a": 1.5, "b": "x"}, {"b": "y", "a": 3.0}]),
}
MLFLOW_1_FORMATS = {
    "application/json; format=pandas-split": SHAPES["MLflow 1.x split document"],
    "application/json;format=pandas-split": SHAPES["MLflow 1.x data as rows"],
    "application/json; format=pandas-records": SHAPES["MLflow 1.x records list"],
    'application/json; format="pandas-records"; charset=utf-8': SHAPES["MLflow 1.x records list"],
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_json_shape_gives_the_same_columns(shape: str) -> None:
    invocation = protocol.decode_invocation(SHAPES[shape], "application/json", NAMES)
    assert invocation.payload.rows == 2
    assert invocation.payload.part().columns == EXPECTED
    assert invocation.proba is False


@pytest.mark.parametrize("content_type", list(MLFLOW_1_FORMATS))
def test_mlflow_1_format_parameters_are_taken(content_type: str) -> None:
    invocation = protocol.decode_invocation(MLFLOW_1_FORMATS[content_type], content_type, NAMES)
    assert invocation.payload.part().columns == EXPECTED


@pytest.mark.parametrize(
    "content_type", ["text/csv", "application/csv", "text/csv; charset=utf-8", "TEXT/CSV"]
)
def test_csv_bodies_become_a_frame(content_type: str) -> None:
    invocation = protocol.decode_invocation(b"a,b\n1.5,x\n3,y\n", content_type, NAMES)
    frame = invocation.payload.frame
    assert frame is not None and frame.to_dict(orient="list") == EXPECTED


def test_parquet_body_becomes_a_frame() -> None:
    invocation = protocol.decode_invocation(_parquet(), "application/vnd.apache.parquet", NAMES)
    assert invocation.payload.frame is not None
    assert invocation.payload.frame.to_dict(orient="list") == EXPECTED


def test_charset_utf8_is_accepted_on_json_and_proba_is_read() -> None:
    body = _json({"inputs": {"a": [1], "b": ["x"]}, "params": {"proba": True}})
    invocation = protocol.decode_invocation(body, "application/json; charset=UTF-8", NAMES)
    assert invocation.proba is True
    assert invocation.payload.part().columns == {"a": [1], "b": ["x"]}


def test_a_single_column_model_takes_bare_values() -> None:
    invocation = protocol.decode_invocation(
        _json({"instances": [1, 2, 3]}), "application/json", ["a"]
    )
    assert invocation.payload.part().columns == {"a": [1, 2, 3]}


BAD_BODIES = {
    "malformed JSON": (b'{"inputs": [1, 2', "malformed JSON"),
    "not UTF-8": (b'{"inputs": "\xff"}', "not UTF-8"),
    "not an object or a list": (b'"rows"', "must be a JSON object or a list of records"),
    "a list of values": (b"[1, 2]", "a JSON list of values is not a table"),
    "a list of rows": (
        b"[[1, 2]]",
        r"a JSON list of lists is ambiguous \(rows or columns\?\): send rows in the "
        r'model\'s column order \(a, b\) as \{"inputs": \[\[\.\.\.\], \.\.\.\]\}',
    ),
    "a list of records and rows": (_json([{"a": 1}, [1, 2]]), "row 2 is not an object"),
    "split keys without data": (_json({"columns": ["a", "b"]}), "need 'data' beside them"),
    "data and inputs": (_json({"data": [[1, 2]], "inputs": [[1, 2]]}), "found 2: inputs, data"),
    "data rows of the wrong width": (_json({"data": [[1, 2, 3]]}), "row 1 has 3 values"),
    "no input key": (_json({"params": {}}), "exactly one of"),
    "two input keys": (_json({"inputs": [[1, 2]], "instances": [[1, 2]]}), "found 2"),
    "unknown key": (_json({"inputs": [[1, 2]], "extra": 1}), "unknown key 'extra'"),
    "short row": (
        _json({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3]]}}),
        "row 2 has 1 values, expected 2",
    ),
    "duplicate column": (
        _json({"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}),
        "column 'a' appears twice",
    ),
    "records not objects": (_json({"dataframe_records": [[1, 2]]}), "row 1 is not an object"),
    "ragged columns": (_json({"inputs": {"a": [1, 2], "b": [1]}}), "different lengths"),
    "proba not a boolean": (_json({"inputs": [[1, 2]], "params": {"proba": "yes"}}), "'proba'"),
    "bare values for two columns": (_json({"instances": [1, 2]}), "takes 2 columns"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_json_bodies_are_data_errors(case: str) -> None:
    body, message = BAD_BODIES[case]
    with pytest.raises(DataError, match=message) as caught:
        protocol.decode_invocation(body, "application/json", NAMES)
    assert caught.value.http_status == 400


def test_an_unknown_key_lists_every_accepted_shape_each_of_which_decodes() -> None:
    with pytest.raises(DataError) as caught:
        protocol.decode_invocation(_json({"rows": [[1, 2]]}), "application/json", NAMES)
    message = caught.value.message
    assert message.startswith("unknown key 'rows' in the request; send one of: ")
    assert "\n" not in message
    assert len(protocol.SHAPES) == 7
    for example in protocol.SHAPES:
        assert example in message
        decoded = protocol.decode_invocation(example.encode(), "application/json", NAMES)
        assert decoded.payload.part().columns == {"a": [1], "b": [2]}


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/json; format=pandas-split", _json([{"a": 1}]), 'expected {"columns"'),
        ("application/json; format=pandas-split", _json({"inputs": [[1, 2]]}), "not 'inputs'"),
        ("application/json; format=pandas-records", _json({"data": [[1, 2]]}), "list of records"),
    ],
)
def test_a_format_parameter_the_body_does_not_match_is_a_400(
    content_type: str, body: bytes, message: str
) -> None:
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        protocol.decode_invocation(body, content_type, NAMES)
    assert caught.value.http_status == 400


def test_malformed_csv_names_the_problem_without_repeating_the_row() -> None:
    with pytest.raises(DataError) as caught:
        protocol.decode_invocation(b"a,b\n1,x\n2,SECRET,9\n", "text/csv", NAMES)
    assert "Expected 2 columns, got 3" in caught.value.message
    assert "SECRET" not in caught.value.message


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", "text/csv", "empty"),
        (b"PAR1 not parquet", "application/vnd.apache.parquet", "not a readable Parquet body"),
    ],
)
def test_unreadable_csv_and_parquet(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        protocol.decode_invocation(body, content_type, NAMES)


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (None, "no Content-Type"),
        ("text/plain", "unsupported Content-Type 'text/plain'"),
        ("application/json; charset=latin-1", "unsupported charset"),
        ("application/json; format=tf-instances", "unsupported format 'tf-instances'"),
    ],
)
def test_unsupported_media_types(content_type: str | None, message: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=message) as caught:
        protocol.decode_invocation(b"{}", content_type, NAMES)
    assert caught.value.http_status == 415


def test_v2_row_major_tensor_maps_onto_the_signature() -> None:
    body = _json(
        {
            "id": "r1",
            "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}],
            "outputs": [{"name": "predict_proba"}],
        }
    )
    request = protocol.decode_infer(body, "application/json", NAMES)
    assert request.payload.part().columns == {"a": [1, 3], "b": [2, 4]}
    assert request.outputs == ("predict_proba",)
    assert request.id == "r1"


def test_v2_one_tensor_per_column_and_nested_data() -> None:
    body = _json(
        {
            "inputs": [
                {"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [[1.5], [3.0]]},
                {"name": "b", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]},
            ]
        }
    )
    request = protocol.decode_infer(body, "application/json", NAMES)
    assert request.payload.part().columns == EXPECTED
    assert request.outputs == ("predict",)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"inputs": []}, "non-empty list"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "data": [1, 2, 3]}]}, "has 3 columns"),
        ({"inputs": [{"name": "x", "shape": [1, 2], "data": [1]}]}, "holds 1 values"),
        ({"inputs": [{"name": "a", "shape": [1], "data": [1]}], "outputs": [{"name": "x"}]}, "x"),
        ({"inputs": [{"name": "a", "shape": "1", "data": [1]}]}, "'shape'"),
    ],
)
def test_bad_v2_requests(document: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        protocol.decode_infer(_json(document), "application/json", NAMES)


def test_predictions_encode_nan_as_null_and_probabilities_with_classes() -> None:
    body = protocol.encode_predictions(np.array([1.0, np.nan]))
    assert json.loads(body) == {"predictions": [1.0, None]}
    body = protocol.encode_predictions(
        np.array(["no", "yes"]), np.array([[0.25, 0.75], [0.5, 0.5]]), [np.str_("no"), "yes"]
    )
    assert json.loads(body) == {
        "predictions": ["no", "yes"],
        "classes": ["no", "yes"],
        "probabilities": [[0.25, 0.75], [0.5, 0.5]],
    }


def test_v2_response_holds_the_requested_outputs() -> None:
    request = protocol.InferRequest(protocol.Payload(), ("predict", "predict_proba"), "r1")
    body = protocol.encode_infer_response(
        request, "iris", "abc", np.array([2, 3]), np.array([[0.5, 0.5], [0.0, 1.0]]), [2, 3]
    )
    document = json.loads(body)
    assert document["id"] == "r1" and document["model_name"] == "iris"
    predict, proba = document["outputs"]
    assert predict == {"name": "predict", "shape": [2], "datatype": "INT64", "data": [2, 3]}
    assert proba["shape"] == [2, 2] and proba["data"] == [0.5, 0.5, 0.0, 1.0]
    assert proba["parameters"] == {"classes": [2, 3]}


def test_schema_errors_keep_row_and_column_but_not_the_value() -> None:
    error = SchemaError("'SECRET-123' is not a number", column="age", row=4)
    message = protocol.client_message(error)
    assert message == "row 5, column 'age': value not a number"
    missing = SchemaError("missing column 'age' (model expects: age, income)")
    assert protocol.client_message(missing) == missing.message


def test_error_body_has_exactly_code_and_message() -> None:
    assert json.loads(protocol.encode_error("BAD_REQUEST", "bad")) == {
        "error_code": "BAD_REQUEST",
        "message": "bad",
    }


def test_v2_model_metadata_types_inputs_and_outputs() -> None:
    metadata = tensors.model_metadata(
        "iris", "abc", [("a", "float"), ("n", "integer"), ("s", "string")], [0, 1, 2], True
    )
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [
        ("a", "FP64"),
        ("n", "INT64"),
        ("s", "BYTES"),
    ]
    assert metadata["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    regressor = tensors.model_metadata("prices", "abc", [("a", "float")], None, False)
    assert regressor["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    labels = tensors.model_metadata("churn", "abc", [("a", "float")], ["no", "yes"], True)
    assert labels["outputs"][0]["datatype"] == "BYTES"
