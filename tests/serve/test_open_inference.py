"""`/v2` against a real Open Inference (V2) client nobody here wrote: NVIDIA's
`tritonclient.http`, in its JSON and binary tensor modes, its answers compared with
`/invocations` for the same rows; and the protocol's error bodies on every `/v2` route."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from sklearn.linear_model import LogisticRegression
from tritonclient.utils import InferenceServerException

from infer_cli.core.card import ModelCard
from infer_cli.core.model import Model
from infer_cli.core.signature import Column, Signature
from infer_cli.core.store import load_model
from infer_cli.serve.routes import model_metadata, model_name, model_version

from conftest import Server, call

NUMPY_TYPES = {"FP64": np.float64, "INT64": np.int64, "BOOL": np.bool_, "BYTES": np.object_}


@pytest.fixture
def client(serve: Server) -> Iterator[Any]:
    """Serve a model and hand back (model, tritonclient, port)."""
    clients: list[Any] = []

    def start(model: Model, **options: Any) -> tuple[Any, int]:
        _, port = serve(model, **options)
        clients.append(triton.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=120))
        return clients[-1], port

    yield start
    for opened in clients:
        opened.close()


def _rows(sample_data: Path, name: str, count: int) -> pd.DataFrame:
    # A V2 tensor has no missing value: a BYTES element is some text.
    frame = pd.read_csv(sample_data / f"{name}_new.csv").dropna()
    return frame.sample(count, replace=True, random_state=0).reset_index(drop=True)


def _inputs(model: Model, rows: pd.DataFrame, binary: bool) -> list[Any]:
    """One input per column, each in the datatype the model's metadata announces."""
    inputs = []
    for tensor in model_metadata(model)["inputs"]:
        values = rows[tensor["name"]].to_numpy()
        if tensor["datatype"] == "BYTES":
            values = np.array([str(value).encode() for value in values], dtype=np.object_)
        else:
            values = values.astype(NUMPY_TYPES[tensor["datatype"]])
        infer_input = triton.InferInput(tensor["name"], [len(rows)], tensor["datatype"])
        infer_input.set_data_from_numpy(values, binary_data=binary)
        inputs.append(infer_input)
    return inputs


def _invocations(port: int, rows: pd.DataFrame, proba: bool) -> dict[str, Any]:
    split = json.loads(rows.to_json(orient="split", index=False))
    body = json.dumps({"dataframe_split": split, "params": {"proba": proba}}).encode()
    status, _, answer = call(port, "POST", "/invocations", body)
    assert status == 200, answer
    return json.loads(answer)  # type: ignore[no-any-return]


def _labels(values: np.ndarray) -> list[Any]:
    return [value.decode() if isinstance(value, bytes) else value for value in values.tolist()]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("count", [1, 10_000])
@pytest.mark.parametrize("name", ["iris", "churn", "housing"])
def test_tritonclient_infer_equals_invocations(
    client: Any,
    trained_models: dict[str, Path],
    sample_data: Path,
    name: str,
    count: int,
    binary: bool,
) -> None:
    model = load_model(trained_models[name])
    triton_client, port = client(model)
    rows = _rows(sample_data, name, count)
    proba = model.can_predict_proba
    outputs = [triton.InferRequestedOutput("predict", binary_data=binary)]
    if proba:
        outputs.append(triton.InferRequestedOutput("predict_proba", binary_data=binary))
    result = triton_client.infer(
        model_name(model), _inputs(model, rows, binary), outputs=outputs, request_id="r-7"
    )
    expected = _invocations(port, rows, proba)
    response = result.get_response()
    assert response["id"] == "r-7" and response["model_name"] == model_name(model)
    predicted = result.as_numpy("predict")
    assert predicted.shape == (count,)
    if model.is_classifier:
        assert _labels(predicted) == expected["predictions"]
    else:
        assert np.allclose(predicted, expected["predictions"])
    if proba:
        probabilities = result.as_numpy("predict_proba")
        assert probabilities.shape == (count, len(expected["classes"]))
        assert np.allclose(probabilities, expected["probabilities"])
        output = result.get_output("predict_proba")
        assert output["parameters"]["classes"] == expected["classes"]
    sizes = [o.get("parameters", {}).get("binary_data_size") for o in response["outputs"]]
    assert all(size is not None for size in sizes) if binary else not any(sizes)


def test_tritonclient_health_readiness_and_metadata(
    client: Any, trained_models: dict[str, Path]
) -> None:
    model = load_model(trained_models["churn"])
    triton_client, _ = client(model)
    name, version = model_name(model), model_version(model)
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(name)
    assert triton_client.is_model_ready(name, version)
    assert not triton_client.is_model_ready("other")
    assert not triton_client.is_model_ready(name, "no-such-version")
    metadata = triton_client.get_model_metadata(name)
    assert metadata == model_metadata(model)
    assert triton_client.get_model_metadata(name, version) == metadata
    assert {tensor["name"] for tensor in metadata["inputs"]} == set(model.signature.names)


def test_tritonclient_reads_v2_errors(client: Any, trained_models: dict[str, Path]) -> None:
    model = load_model(trained_models["iris"])
    triton_client, _ = client(model)
    with pytest.raises(InferenceServerException, match="no model named 'other'") as caught:
        triton_client.get_model_metadata("other")
    assert caught.value.status() == "404"
    bad = triton.InferInput("sepal_length", [2], "FP64")
    bad.set_data_from_numpy(np.array([1.0, 2.0]), binary_data=False)
    with pytest.raises(InferenceServerException, match="missing column") as caught:
        triton_client.infer(model_name(model), [bad])
    assert caught.value.status() == "400"


# The pinned model's columns: an int64, a float32 and a boolean column, as MLflow pins them.
PINNED = ["count", "ratio", "flag"]


@pytest.fixture(scope="module")
def pinned_model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    frame = pd.DataFrame(
        {"count": np.arange(60), "ratio": np.linspace(0, 1, 60), "flag": [True, False] * 30}
    )
    estimator = LogisticRegression().fit(frame, frame["count"] % 3 == 0)
    card = ModelCard(
        task="classification",
        target="label",
        classes=[False, True],
        signature=Signature(
            (
                Column("count", "integer", numpy_dtype="int64"),
                Column("ratio", "float", numpy_dtype="float32"),
                Column("flag", "boolean"),
            )
        ),
    )
    return Model(estimator, card, tmp_path_factory.mktemp("pinned") / "pinned")


WHOLE = ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("whole", WHOLE)
@pytest.mark.parametrize("real", ["FP32", "FP64"])
def test_every_datatype_maps_onto_the_models_columns(
    client: Any, pinned_model: Model, whole: str, real: str, binary: bool
) -> None:
    triton_client, port = client(pinned_model)
    rows = pd.DataFrame({"count": [0, 3, 7, 100], "ratio": [0.5, 0.25, 1.0, 0.0]})
    rows["flag"] = [True, False, True, False]
    inputs = []
    for column, datatype in zip(PINNED, (whole, real, "BOOL"), strict=True):
        tensor = triton.InferInput(column, [len(rows)], datatype)
        values = rows[column].to_numpy().astype(triton_dtype(datatype))
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    result = triton_client.infer("pinned", inputs)
    expected = _invocations(port, rows, proba=False)["predictions"]
    assert result.as_numpy("predict").tolist() == expected


def triton_dtype(datatype: str) -> Any:
    from tritonclient.utils import triton_to_np_dtype

    return triton_to_np_dtype(datatype)


def test_threshold_and_other_parameters_pass_through(
    client: Any, trained_models: dict[str, Path], sample_data: Path
) -> None:
    model = load_model(trained_models["iris"])
    triton_client, port = client(model)
    rows = _rows(sample_data, "iris", 3)
    result = triton_client.infer(
        model_name(model),
        _inputs(model, rows, binary=True),
        parameters={"note": "kept", "tags": ["a"]},
    )
    assert _labels(result.as_numpy("predict")) == _invocations(port, rows, False)["predictions"]


def _v2_error(body: bytes) -> str:
    document = json.loads(body)
    assert set(document) == {"error"}, "the V2 error shape changed"
    return document["error"]  # type: ignore[no-any-return]


IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
GOOD = json.dumps(
    {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}]}
).encode()


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "message"),
    [
        ("GET", "/v2/models/other", None, None, 404, "no model named 'other'"),
        ("GET", "/v2/models/other/ready", None, None, 404, "no model named 'other'"),
        ("POST", "/v2/models/other/infer", GOOD, None, 404, "no model named 'other'"),
        ("GET", "/v2/models/iris/versions/0/ready", None, None, 404, "no version '0'"),
        ("GET", "/v2/models/iris/nothing", None, None, 404, "no endpoint"),
        ("GET", "/v2/nothing", None, None, 404, "no endpoint"),
        ("POST", "/v2/health/live", b"{}", None, 405, "POST is not allowed"),
        ("GET", "/v2/models/iris/infer", None, None, 405, "GET is not allowed"),
        ("POST", "/v2/models/iris/infer", b"{oops", None, 400, "malformed JSON"),
        ("POST", "/v2/models/iris/infer", b'{"inputs": []}', None, 400, "non-empty list"),
        (
            "POST",
            "/v2/models/iris/infer",
            json.dumps(
                {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP16", "data": IRIS_ROW}]}
            ).encode(),
            None,
            400,
            "unknown datatype 'FP16'",
        ),
        (
            "POST",
            "/v2/models/iris/infer",
            json.dumps(
                {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT32", "data": IRIS_ROW}]}
            ).encode(),
            None,
            400,
            "value 1 of its INT32 data is a number",
        ),
        ("POST", "/v2/models/iris/infer", GOOD, "text/csv", 415, "unsupported Content-Type"),
        (
            "POST",
            "/v2/models/iris/infer",
            json.dumps({"inputs": [{"name": "x", "shape": [3, 4], "data": IRIS_ROW * 3}]}).encode(),
            None,
            413,
            "at most 2 per request",
        ),
        ("POST", "/v2/models/iris/infer", b" " * 5000, None, 413, "at most 4000"),
    ],
)
def test_v2_errors_have_the_protocols_shape(
    serve: Server,
    trained_models: dict[str, Path],
    method: str,
    path: str,
    body: bytes | None,
    content_type: str | None,
    status: int,
    message: str,
) -> None:
    _, port = serve(load_model(trained_models["iris"]), max_rows=2, max_body_bytes=4000)
    got, headers, answer = call(port, method, path, body, content_type)
    assert got == status, answer
    assert headers["content-type"] == "application/json"
    assert message in _v2_error(answer)
    # /invocations keeps MLflow's shape on the same server.
    status, _, answer = call(port, "POST", "/invocations", b"{oops")
    assert status == 400 and set(json.loads(answer)) == {"error_code", "message"}


def test_a_model_still_loading_is_a_v2_503(serve: Server) -> None:
    _, port = serve(None)
    status, _, answer = call(port, "GET", "/v2/models/iris")
    assert status == 503 and "still loading" in _v2_error(answer)


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF8"],
)
def test_v2_bodies_without_a_content_type_are_json(
    serve: Server, trained_models: dict[str, Path], content_type: str | None
) -> None:
    model = load_model(trained_models["iris"])
    _, port = serve(model)
    status, _, answer = call(port, "POST", "/v2/models/iris/infer", GOOD, content_type)
    assert status == 200, answer
    expected = model.predict(pd.DataFrame([IRIS_ROW], columns=model.signature.names))
    assert json.loads(answer)["outputs"][0]["data"] == expected.values.tolist()


def _bytes_tensor(*texts: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(text)) + text for text in texts)


def _binary_request(
    inputs: list[dict[str, Any]], data: bytes, header_length: int | str | None = None
) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": inputs}).encode()
    length = len(header) if header_length is None else header_length
    return header + data, {"Inference-Header-Content-Length": str(length)}


def _column(name: str, datatype: str, size: int, shape: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "shape": [shape],
        "datatype": datatype,
        "parameters": {"binary_data_size": size},
    }


IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ONE_ROW = struct.pack("<4d", *IRIS_ROW)
MATRIX = {"name": "x", "shape": [1, 4], "datatype": "FP64", "parameters": {"binary_data_size": 32}}

HOSTILE_BINARY: dict[str, tuple[bytes, dict[str, str]]] = {
    "a header length past the body": _binary_request([MATRIX], ONE_ROW, 10**9),
    "a negative header length": _binary_request([MATRIX], ONE_ROW, "-5"),
    "a header length that is not a number": _binary_request([MATRIX], ONE_ROW, "12abc"),
    "a header length cutting the JSON": _binary_request([MATRIX], ONE_ROW, 7),
    "a binary size past the end": _binary_request(
        [{**MATRIX, "parameters": {"binary_data_size": 10**12}}], ONE_ROW
    ),
    "a binary size smaller than the shape": _binary_request(
        [{**MATRIX, "parameters": {"binary_data_size": 16}}], ONE_ROW[:16]
    ),
    "bytes left over": _binary_request([MATRIX], ONE_ROW + b"\0" * 8),
    "a negative binary size": _binary_request(
        [{**MATRIX, "parameters": {"binary_data_size": -32}}], ONE_ROW
    ),
    "a binary size that is a string": _binary_request(
        [{**MATRIX, "parameters": {"binary_data_size": "32"}}], ONE_ROW
    ),
    "binary data without a datatype": _binary_request(
        [{k: v for k, v in MATRIX.items() if k != "datatype"}], ONE_ROW
    ),
    "binary data and JSON data": _binary_request([{**MATRIX, "data": IRIS_ROW}], ONE_ROW),
    "a huge shape over the row limit": _binary_request([{**MATRIX, "shape": [2**40, 4]}], ONE_ROW),
    "a BYTES length past the end": _binary_request(
        [_column(name, "BYTES", 8) for name in IRIS[:1]]
        + [_column(name, "FP64", 8) for name in IRIS[1:]],
        struct.pack("<I", 2**31) + b"abcd" + struct.pack("<3d", 1, 2, 3),
    ),
    "a BYTES count beyond its bytes": _binary_request(
        [_column("sepal_length", "BYTES", 8, shape=50)], struct.pack("<I", 4) + b"abcd"
    ),
    "BYTES that are not UTF-8": _binary_request(
        [_column("sepal_length", "BYTES", 6)], struct.pack("<I", 2) + b"\xff\xfe"
    ),
    "BYTES with a trailing fragment": _binary_request(
        [_column("sepal_length", "BYTES", 8)], struct.pack("<I", 1) + b"a" + b"xyz"
    ),
    "more inputs than the column limit": _binary_request(
        [_column(f"c{i}", "FP64", 8) for i in range(50)], b"\0" * 400
    ),
    "more rows than the row limit": _binary_request(
        [{**MATRIX, "shape": [1000, 4], "parameters": {"binary_data_size": 32000}}],
        b"\0" * 32000,
    ),
}


@pytest.mark.parametrize("attack", list(HOSTILE_BINARY))
def test_hostile_binary_bodies_are_a_4xx(
    serve: Server, trained_models: dict[str, Path], attack: str
) -> None:
    import http.client

    _, port = serve(load_model(trained_models["iris"]), max_rows=100, max_columns=10)
    body, headers = HOSTILE_BINARY[attack]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.request("POST", "/v2/models/iris/infer", body, headers)
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    expected = 413 if "limit" in attack else 400
    assert response.status == expected, answer
    assert "\n" not in _v2_error(answer)
    status, _, answer = call(port, "POST", "/v2/models/iris/infer", GOOD, None)
    assert status == 200, answer


def test_a_binary_request_by_hand_is_answered_in_binary(
    serve: Server, trained_models: dict[str, Path]
) -> None:
    """The extension's bytes as the protocol lays them out, without any client library."""
    import http.client

    model = load_model(trained_models["churn"])
    _, port = serve(model)
    example = model.card.example[0]
    inputs, data = [], b""
    for tensor in model_metadata(model)["inputs"]:
        value = example[tensor["name"]]
        if tensor["datatype"] == "BYTES":
            raw = _bytes_tensor(str(value).encode(), str(value).encode())
        else:
            raw = np.array([value, value], dtype=NUMPY_TYPES[tensor["datatype"]]).tobytes()
        inputs.append({**_column(tensor["name"], tensor["datatype"], len(raw)), "shape": [2]})
        data += raw
    header = json.dumps(
        {"inputs": inputs, "outputs": [{"name": "predict", "parameters": {"binary_data": True}}]}
    ).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.request(
        "POST",
        f"/v2/models/{model_name(model)}/infer",
        header + data,
        {"Inference-Header-Content-Length": str(len(header))},
    )
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    assert response.status == 200, answer
    length = int(response.getheader("Inference-Header-Content-Length"))
    document = json.loads(answer[:length])
    (output,) = document["outputs"]
    assert "data" not in output and output["shape"] == [2]
    raw = answer[length:]
    assert output["parameters"]["binary_data_size"] == len(raw)
    expected = model.predict(pd.DataFrame([example, example])).values.tolist()
    assert output["datatype"] == "BYTES"
    labels, position = [], 0
    while position < len(raw):
        (size,) = struct.unpack_from("<I", raw, position)
        labels.append(raw[position + 4 : position + 4 + size].decode())
        position += 4 + size
    assert labels == expected
