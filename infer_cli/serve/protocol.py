"""The wire formats of the prediction server, as pure functions of bytes.

Requests become `Payload`s (the rows, column by column, or a DataFrame for CSV and
Parquet) and predictions become response bodies, for MLflow's `/invocations` and for the
Open Inference Protocol (KServe / MLServer V2). Nothing here touches a socket or a model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DataError, SchemaError
from .errors import UnsupportedMediaType

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Columns = dict[str, list[Any]]
INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")
ACCEPTED_TYPES = JSON_TYPES + CSV_TYPES + PARQUET_TYPES
V2_OUTPUTS = ("predict", "predict_proba")


@dataclass(frozen=True)
class Payload:
    """The rows of one request: named columns of equal length, or a DataFrame."""

    columns: Columns | None = None
    frame: pd.DataFrame | None = None
    rows: int = 0


@dataclass(frozen=True)
class Invocation:
    """A decoded `/invocations` request."""

    payload: Payload
    proba: bool = False


@dataclass(frozen=True)
class InferRequest:
    """A decoded V2 `infer` request: the rows, the outputs asked for, the request id."""

    payload: Payload
    outputs: tuple[str, ...] = ("predict",)
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def media_type(content_type: str | None) -> str:
    """The bare media type of a Content-Type header; other charsets than UTF-8 are refused."""
    if not content_type:
        raise UnsupportedMediaType(
            f"no Content-Type header (send one of: {', '.join(ACCEPTED_TYPES)})"
        )
    kind, _, parameters = content_type.partition(";")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise UnsupportedMediaType(f"unsupported charset '{value.strip()}' (send UTF-8)")
    return kind.strip().lower()


def decode_invocation(body: bytes, content_type: str | None, names: Sequence[str]) -> Invocation:
    """Decode an `/invocations` body; `names` are the model's input columns, in order."""
    kind = media_type(content_type)
    if kind in JSON_TYPES:
        return _decode_json_invocation(body, names)
    if kind in CSV_TYPES:
        return Invocation(_frame_payload(_read_csv(body)))
    if kind in PARQUET_TYPES:
        return Invocation(_frame_payload(_read_parquet(body)))
    raise UnsupportedMediaType(
        f"unsupported Content-Type '{kind}' (send one of: {', '.join(ACCEPTED_TYPES)})"
    )


def decode_infer(body: bytes, content_type: str | None, names: Sequence[str]) -> InferRequest:
    """Decode a V2 `infer` body: one row-major 2-D tensor, or one 1-D tensor per column."""
    kind = media_type(content_type)
    if kind not in JSON_TYPES:
        raise UnsupportedMediaType(f"unsupported Content-Type '{kind}' (send application/json)")
    document = _load_json(body)
    if not isinstance(document, dict):
        raise DataError("the request body must be a JSON object with an 'inputs' list")
    tensors = document.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise DataError("'inputs' must be a non-empty list of tensors")
    if len(tensors) == 1 and len(_shape(tensors[0])) == 2:
        payload = _payload_from_matrix(tensors[0], names)
    else:
        payload = _payload_from_tensors(tensors)
    outputs = document.get("outputs") or [{"name": "predict"}]
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise DataError("'outputs' must be a list of objects with a 'name'")
    wanted = tuple(str(output.get("name")) for output in outputs)
    for name in wanted:
        if name not in V2_OUTPUTS:
            raise DataError(f"unknown output '{name}' (this model gives: {', '.join(V2_OUTPUTS)})")
    request_id = document.get("id")
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise DataError("'parameters' must be an object")
    return InferRequest(
        payload, wanted, None if request_id is None else str(request_id), parameters
    )


def encode_predictions(
    values: np.ndarray,
    probabilities: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
) -> bytes:
    """`{"predictions": [...]}`, with `classes` and `probabilities` when they were asked for."""
    document: dict[str, Any] = {"predictions": plain_list(values)}
    if probabilities is not None:
        document["classes"] = [_plain(label) for label in classes or []]
        document["probabilities"] = [plain_list(row) for row in probabilities]
    return _dump(document)


def encode_infer_response(
    request: InferRequest,
    model_name: str,
    model_version: str,
    values: np.ndarray,
    probabilities: np.ndarray | None,
    classes: Sequence[Any] | None,
) -> bytes:
    """A V2 inference response holding the outputs the request asked for."""
    outputs: list[dict[str, Any]] = []
    for name in request.outputs:
        if name == "predict":
            outputs.append(
                {
                    "name": "predict",
                    "shape": [len(values)],
                    "datatype": tensor_datatype(values),
                    "data": plain_list(values),
                }
            )
        elif probabilities is not None:
            outputs.append(
                {
                    "name": "predict_proba",
                    "shape": list(probabilities.shape),
                    "datatype": "FP64",
                    "data": plain_list(probabilities.reshape(-1)),
                    "parameters": {"classes": [_plain(label) for label in classes or []]},
                }
            )
    document: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": outputs,
    }
    if request.id is not None:
        document["id"] = request.id
    return _dump(document)


def model_metadata(
    name: str,
    version: str,
    inputs: Sequence[tuple[str, str]],
    classes: Sequence[Any] | None,
    gives_proba: bool,
) -> dict[str, Any]:
    """V2 model metadata: each input column as a 1-D tensor, and the outputs.

    `inputs` are (name, signature type) pairs; `classes` are a classifier's labels, None
    for a regressor.
    """
    datatypes = {"float": "FP64", "integer": "INT64", "boolean": "BOOL"}
    if classes is None:
        predicted = "FP64"
    elif all(isinstance(label, int) and not isinstance(label, bool) for label in classes):
        predicted = "INT64"
    else:
        predicted = "BYTES"
    outputs = [{"name": "predict", "datatype": predicted, "shape": [-1]}]
    if gives_proba:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes or [])]}
        )
    return {
        "name": name,
        "versions": [version],
        "platform": "scikit-learn",
        "inputs": [
            {"name": column, "datatype": datatypes.get(kind, "BYTES"), "shape": [-1]}
            for column, kind in inputs
        ],
        "outputs": outputs,
    }


def encode_json(document: Any) -> bytes:
    """Any JSON-able document as a compact UTF-8 body."""
    return _dump(document)


def encode_error(error_code: str, message: str) -> bytes:
    """The one JSON shape of every error the server answers."""
    return _dump({"error_code": error_code, "message": message})


def client_message(error: Exception) -> str:
    """An error's message as a client may see it: a schema error keeps the row and column
    but not the offending value, so no part of a request body is echoed back."""
    message = str(error)
    if isinstance(error, SchemaError) and error.row is not None and " is " in error.reason:
        where = [f"row {error.row + 1}"]
        if error.column is not None:
            where.append(f"column '{error.column}'")
        return f"{', '.join(where)}: value {error.reason.rsplit(' is ', 1)[1]}"
    return message


def tensor_datatype(values: np.ndarray) -> str:
    """The V2 datatype name of a NumPy array."""
    kind = values.dtype.kind
    if kind == "f":
        return "FP64"
    if kind in "iu":
        return "INT64"
    if kind == "b":
        return "BOOL"
    return "BYTES"


def plain_list(values: np.ndarray) -> list[Any]:
    """A NumPy array as a list of JSON values; NaN becomes null."""
    import numpy as np

    if values.dtype.kind == "f":
        missing = np.isnan(values)
        if missing.any():
            converted = values.astype(object)
            converted[missing] = None
            return converted.tolist()
        return values.tolist()
    if values.dtype.kind == "O":
        return [_plain(value) for value in values.tolist()]
    return values.tolist()


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _dump(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise DataError(f"the request body is not UTF-8 text (byte {exc.start})") from exc
    except ValueError as exc:
        raise DataError(f"malformed JSON: {exc}") from exc


def _decode_json_invocation(body: bytes, names: Sequence[str]) -> Invocation:
    document = _load_json(body)
    if not isinstance(document, dict):
        raise DataError(f"the request body must be a JSON object with one of: {_keys()}")
    present = [key for key in INPUT_KEYS if key in document]
    unknown = [str(key) for key in document if key not in INPUT_KEYS and key != "params"]
    if unknown:
        raise DataError(f"unknown key '{unknown[0]}' in the request (expected one of: {_keys()})")
    if len(present) != 1:
        found = f"found {len(present)}: {', '.join(present)}" if present else "found none"
        raise DataError(f"the request must hold exactly one of {_keys()} ({found})")
    key = present[0]
    value = document[key]
    if key == "dataframe_split":
        payload = _payload_from_split(value, names)
    elif key == "dataframe_records":
        if not isinstance(value, list):
            raise DataError("'dataframe_records' must be a list of objects")
        payload = _payload_from_records(value, key)
    else:
        payload = _payload_from_instances(value, key, names)
    return Invocation(payload, _proba_param(document.get("params")))


def _keys() -> str:
    return ", ".join(INPUT_KEYS)


def _proba_param(params: Any) -> bool:
    if params is None:
        return False
    if not isinstance(params, dict):
        raise DataError("'params' must be an object")
    proba = params.get("proba", False)
    if not isinstance(proba, bool):
        raise DataError("params: 'proba' must be true or false")
    return proba


def _payload_from_split(value: Any, names: Sequence[str]) -> Payload:
    if not isinstance(value, dict):
        raise DataError("'dataframe_split' must be an object with 'columns' and 'data'")
    data = value.get("data")
    if not isinstance(data, list):
        raise DataError("'dataframe_split' needs 'data': a list of rows")
    columns = value.get("columns")
    if columns is None:
        return _payload_from_rows(data, names, "dataframe_split")
    if not isinstance(columns, list):
        raise DataError("'dataframe_split': 'columns' must be a list of names")
    return _payload_from_rows(data, [str(name) for name in columns], "dataframe_split")


def _payload_from_rows(data: list[Any], columns: Sequence[str], key: str) -> Payload:
    """Row-major values under known column names; a row must hold one value per column."""
    width = len(columns)
    if len(set(columns)) != width:
        duplicate = next(name for name in columns if list(columns).count(name) > 1)
        raise DataError(f"'{key}': column '{duplicate}' appears twice")
    for position, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else "not a list"
            raise DataError(f"'{key}': row {position + 1} has {got}, expected {width}")
    if len(data) == 1:
        return Payload(
            {name: [value] for name, value in zip(columns, data[0], strict=True)}, rows=1
        )
    transposed = zip(*data, strict=True) if data else ([] for _ in columns)
    return Payload(
        {name: list(values) for name, values in zip(columns, transposed, strict=True)},
        rows=len(data),
    )


def _payload_from_records(records: list[Any], key: str) -> Payload:
    names: dict[str, None] = {}
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(f"'{key}': row {position + 1} is not an object")
        names.update(dict.fromkeys(record))
    columns = {name: [record.get(name) for record in records] for name in names}
    return Payload(columns, rows=len(records))


def _payload_from_instances(value: Any, key: str, names: Sequence[str]) -> Payload:
    """TF-serving style input: records, a dict of columns, or rows in the model's order."""
    if isinstance(value, dict):
        columns: Columns = {}
        for name, values in value.items():
            columns[str(name)] = values if isinstance(values, list) else [values]
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise DataError(f"'{key}': the columns have different lengths")
        return Payload(columns, rows=lengths.pop() if lengths else 0)
    if not isinstance(value, list):
        raise DataError(f"'{key}' must be a list of rows or an object of columns")
    if not value or isinstance(value[0], dict):
        return _payload_from_records(value, key)
    if isinstance(value[0], list):
        return _payload_from_rows(value, names, key)
    if len(names) == 1:
        return Payload({names[0]: value}, rows=len(value))
    raise DataError(
        f"'{key}' holds bare values, but the model takes {len(names)} columns: "
        "send rows as lists or objects"
    )


def _shape(tensor: Any) -> list[int]:
    if not isinstance(tensor, dict):
        raise DataError("each input tensor must be an object with 'name', 'shape' and 'data'")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise DataError(f"input '{tensor.get('name')}': 'shape' must be a list of sizes")
    return shape


def _flat_data(tensor: dict[str, Any], size: int) -> list[Any]:
    data = tensor.get("data")
    if not isinstance(data, list):
        raise DataError(f"input '{tensor.get('name')}': 'data' must be a list")
    if data and isinstance(data[0], list):
        data = [value for row in data for value in (row if isinstance(row, list) else [row])]
    if len(data) != size:
        raise DataError(
            f"input '{tensor.get('name')}': 'data' holds {len(data)} values, its shape says {size}"
        )
    return data


def _payload_from_matrix(tensor: dict[str, Any], names: Sequence[str]) -> Payload:
    rows, width = _shape(tensor)
    if width != len(names):
        raise DataError(
            f"input '{tensor.get('name')}' has {width} columns; the model takes {len(names)} "
            f"({', '.join(names)})"
        )
    data = _flat_data(tensor, rows * width)
    return Payload({name: data[i::width] for i, name in enumerate(names)}, rows=rows)


def _payload_from_tensors(tensors: list[Any]) -> Payload:
    columns: Columns = {}
    for tensor in tensors:
        shape = _shape(tensor)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise DataError(
                f"input '{tensor.get('name')}': send one 2-D tensor of rows, "
                "or one 1-D tensor per column"
            )
        columns[str(tensor.get("name"))] = _flat_data(tensor, shape[0])
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise DataError("the input tensors have different lengths")
    return Payload(columns, rows=lengths.pop())


def _frame_payload(frame: pd.DataFrame) -> Payload:
    return Payload(frame=frame, rows=len(frame))


def _read_csv(body: bytes) -> pd.DataFrame:
    import pyarrow as pa
    from pyarrow import csv

    if not body.strip():
        raise DataError("the CSV body is empty (expected a header row)")
    try:
        table = csv.read_csv(pa.BufferReader(body))
    except pa.ArrowInvalid as exc:
        raise DataError(f"malformed CSV: {_without_row_text(str(exc))}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"the CSV body is not UTF-8 text (byte {exc.start})") from exc
    return table.to_pandas()


def _read_parquet(body: bytes) -> pd.DataFrame:
    import pyarrow as pa
    from pyarrow import parquet

    try:
        table = parquet.read_table(pa.BufferReader(body))
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).strip().splitlines()[0].replace(" '<Buffer>'", "")
        raise DataError(f"not a readable Parquet body ({reason})") from exc
    return table.to_pandas()


def _without_row_text(message: str) -> str:
    # Arrow appends the offending line ("Expected 4 columns, got 5: 1,2,3,4,5"); a client's
    # own data is not repeated back to it.
    first = message.strip().splitlines()[0] if message.strip() else "unreadable"
    head, _, _ = first.partition(": ")
    reason = first[len(head) + 2 :] if head.startswith("CSV parse error") else first
    return reason.split(": ", 1)[0]
