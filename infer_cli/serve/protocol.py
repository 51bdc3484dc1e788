"""The wire formats of the prediction server, as pure functions of bytes.

Requests become `Invocation`s and `InferRequest`s around their rows (a `Payload`, read by
`payloads`) and predictions become response bodies, for MLflow's `/invocations` (the
shapes of MLflow 2 and those of MLflow 1.x, still sent by many clients) and for the Open
Inference Protocol (KServe / MLServer V2). Nothing here touches a socket or a model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DataError, SchemaError
from .errors import UnsupportedMediaType
from .payloads import Limits, Payload, Reader

if TYPE_CHECKING:
    import numpy as np

INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
SPLIT_KEYS = ("columns", "data", "index")
"""MLflow 1.x's `pandas-split` body: pandas' split document as the whole request."""
JSON_FORMATS = ("pandas-split", "pandas-records")
SPLIT_DOCUMENT = '{"columns": ["a", "b"], "data": [[1, 2]]}'
RECORDS_LIST = '[{"a": 1, "b": 2}]'
SHAPES = (
    '{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}',
    '{"dataframe_records": [{"a": 1, "b": 2}]}',
    '{"instances": [{"a": 1, "b": 2}]}',
    '{"inputs": [[1, 2]]}',
    SPLIT_DOCUMENT,
    '{"data": [[1, 2]]}',
    RECORDS_LIST,
)
"""One example of each JSON body `/invocations` takes, for the error that lists them."""
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")
ACCEPTED_TYPES = JSON_TYPES + CSV_TYPES + PARQUET_TYPES
V2_OUTPUTS = ("predict", "predict_proba")


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


def decode_invocation(
    body: bytes,
    content_type: str | None,
    names: Sequence[str],
    limits: Limits | None = None,
    by_position: bool = False,
) -> Invocation:
    """Decode an `/invocations` body; `names` are the model's input columns, in order (taken
    by position if `by_position`); more than `limits` allow is refused with 413."""
    kind = media_type(content_type)
    reader = Reader(names, limits or Limits(), by_position)
    if kind in JSON_TYPES:
        invocation = _decode_json_invocation(body, reader, _json_format(content_type))
        _check(invocation.payload, reader.limits)
        return invocation
    if kind in CSV_TYPES:
        return Invocation(reader.csv(body))
    if kind in PARQUET_TYPES:
        return Invocation(reader.parquet(body))
    raise UnsupportedMediaType(
        f"unsupported Content-Type '{kind}' (send one of: {', '.join(ACCEPTED_TYPES)})"
    )


def decode_infer(
    body: bytes, content_type: str | None, names: Sequence[str], limits: Limits | None = None
) -> InferRequest:
    """Decode a V2 `infer` body: one row-major 2-D tensor, or one 1-D tensor per column."""
    kind = media_type(content_type)
    if kind not in JSON_TYPES:
        raise UnsupportedMediaType(f"unsupported Content-Type '{kind}' (send application/json)")
    reader = Reader(names, limits or Limits())
    document = reader.json(body)
    if not isinstance(document, dict):
        raise DataError("the request body must be a JSON object with an 'inputs' list")
    tensors = document.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise DataError("'inputs' must be a non-empty list of tensors")
    payload = reader.tensors(tensors)
    _check(payload, reader.limits)
    outputs = document.get("outputs") or [{"name": "predict"}]
    if not isinstance(outputs, list) or not all(
        isinstance(output, dict) and isinstance(output.get("name"), str) for output in outputs
    ):
        raise DataError("'outputs' must be a list of objects with a 'name'")
    wanted = tuple(output["name"] for output in outputs)
    for name in wanted:
        if name not in V2_OUTPUTS:
            raise DataError(f"unknown output '{name}' (this model gives: {', '.join(V2_OUTPUTS)})")
    request_id = document.get("id")
    if request_id is not None and (
        isinstance(request_id, bool) or not isinstance(request_id, (str, int, float))
    ):
        raise DataError("'id' must be a string")
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise DataError("'parameters' must be an object")
    return InferRequest(
        payload, wanted, None if request_id is None else str(request_id), parameters
    )


@dataclass(frozen=True)
class Part:
    """Predictions for some of a request's rows, already written as JSON array items, so
    that a large request's reply is written a part at a time and joined at the end."""

    rows: int
    values: bytes
    probabilities: bytes | None
    datatype: str
    """The V2 datatype of the values."""
    width: int
    """Columns of the probabilities (one per class)."""


def encode_part(
    values: np.ndarray, probabilities: np.ndarray | None = None, *, flat: bool = False
) -> Part:
    """A part of a reply: probabilities as rows of lists (MLflow) or row-major (`flat`, V2)."""
    proba = None
    if probabilities is not None:
        proba = _items(plain_list(probabilities.reshape(-1)) if flat else plain_rows(probabilities))
    width = 0 if probabilities is None else int(probabilities.shape[1])
    return Part(len(values), _items(plain_list(values)), proba, tensor_datatype(values), width)


def encode_predictions(
    values: np.ndarray,
    probabilities: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
) -> bytes:
    """`{"predictions": [...]}`, with `classes` and `probabilities` when they were asked for."""
    return predictions_body([encode_part(values, probabilities)], classes)


def predictions_body(parts: Sequence[Part], classes: Sequence[Any] | None = None) -> bytes:
    """The `/invocations` reply for the rows of `parts`, in order."""
    body = b'{"predictions":[' + _joined(part.values for part in parts) + b"]"
    if parts and parts[0].probabilities is not None:
        body += b',"classes":' + _dump([_plain(label) for label in classes or []])
        body += b',"probabilities":[' + _joined(part.probabilities for part in parts) + b"]"
    return body + b"}"


def encode_infer_response(
    request: InferRequest,
    model_name: str,
    model_version: str,
    values: np.ndarray,
    probabilities: np.ndarray | None,
    classes: Sequence[Any] | None,
) -> bytes:
    """A V2 inference response holding the outputs the request asked for."""
    part = encode_part(values, probabilities, flat=True)
    return infer_body(request, model_name, model_version, [part], classes)


def infer_body(
    request: InferRequest,
    model_name: str,
    model_version: str,
    parts: Sequence[Part],
    classes: Sequence[Any] | None,
) -> bytes:
    """The V2 reply for the rows of `parts` (written with `flat=True`), in order."""
    rows = sum(part.rows for part in parts)
    first = parts[0]
    outputs: list[bytes] = []
    for name in request.outputs:
        if name == "predict":
            head: dict[str, Any] = {
                "name": "predict",
                "shape": [rows],
                "datatype": first.datatype,
                "data": [],
            }
            outputs.append(_filled(head, _joined(part.values for part in parts)))
        elif first.probabilities is not None:
            head = {
                "name": "predict_proba",
                "shape": [rows, first.width],
                "datatype": "FP64",
                "data": [],
                "parameters": {"classes": [_plain(label) for label in classes or []]},
            }
            outputs.append(_filled(head, _joined(part.probabilities for part in parts)))
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    body = _dump(document)[:-1] + b',"outputs":[' + b",".join(outputs) + b"]"
    if request.id is not None:
        body += b',"id":' + _dump(request.id)
    return body + b"}"


def _items(values: list[Any]) -> bytes:
    return _dump(values)[1:-1]


def _joined(items: Iterable[bytes | None]) -> bytes:
    return b",".join(item for item in items if item)


def _filled(output: dict[str, Any], items: bytes) -> bytes:
    # A string value writes its quotes escaped, so `"data":[]` can only be the key itself.
    return _dump(output).replace(b'"data":[]', b'"data":[' + items + b"]", 1)


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
    """An error's message as a client may see it, on one line: a schema error keeps the row
    and column but not the offending value, so no part of a request body is echoed back."""
    message = " ".join(str(error).splitlines())
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


def plain_rows(matrix: np.ndarray) -> list[list[Any]]:
    """A 2-D NumPy array as a list of rows of JSON values; NaN becomes null."""
    import numpy as np

    if matrix.dtype.kind == "f" and not np.isnan(matrix).any():
        return matrix.tolist()  # one call instead of one per row: a million rows in 0.2 s
    return [plain_list(row) for row in matrix]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _dump(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def _check(payload: Payload, limits: Limits) -> None:
    limits.check(payload.rows, payload.width)


def _decode_json_invocation(body: bytes, reader: Reader, form: str | None) -> Invocation:
    document = reader.json(body)
    if isinstance(document, list):
        if form == "pandas-split":
            raise DataError(f"format=pandas-split: expected {SPLIT_DOCUMENT}, not a list")
        return Invocation(_listed_rows(document, reader))
    if not isinstance(document, dict):
        raise DataError(f"the request body must be a JSON object or a list of records; {_shapes()}")
    if form == "pandas-records":
        raise DataError(f"format=pandas-records: expected a list of records, {RECORDS_LIST}")
    unknown = [str(key) for key in document if key not in (*INPUT_KEYS, *SPLIT_KEYS, "params")]
    if unknown:
        raise DataError(f"unknown key '{unknown[0]}' in the request; {_shapes()}")
    present = [key for key in INPUT_KEYS if key in document]
    if any(key in document for key in SPLIT_KEYS):
        present.append("data")
    if len(present) != 1:
        found = f"found {len(present)}: {', '.join(present)}" if present else "found none"
        raise DataError(f"the request must hold exactly one of {_keys()} ({found})")
    key = present[0]
    if form == "pandas-split" and key != "data":
        raise DataError(f"format=pandas-split: expected {SPLIT_DOCUMENT}, not '{key}'")
    if key == "data":
        if "data" not in document:
            raise DataError(f"'columns' and 'index' need 'data' beside them: {SPLIT_DOCUMENT}")
        payload = reader.split(document, "data")
        return Invocation(payload, _proba_param(document.get("params")))
    value = document[key]
    if key == "dataframe_split":
        payload = reader.split(value)
    elif key == "dataframe_records":
        if not isinstance(value, list):
            raise DataError("'dataframe_records' must be a list of objects")
        payload = reader.records(value, key)
    else:
        payload = reader.instances(value, key)
    return Invocation(payload, _proba_param(document.get("params")))


def _listed_rows(document: list[Any], reader: Reader) -> Payload:
    """A body that is a JSON list: records (MLflow 1.x `pandas-records`). A list of rows is
    refused, as nothing says whether its lists are rows or columns."""
    if not document or isinstance(document[0], dict):
        return reader.records(document, "pandas-records")
    shown = ", ".join(reader.names[:4]) + (", ..." if len(reader.names) > 4 else "")
    what = (
        "a JSON list of lists is ambiguous (rows or columns?)"
        if isinstance(document[0], list)
        else "a JSON list of values is not a table"
    )
    raise DataError(
        f"{what}: send rows in the model's column order ({shown}) as "
        f'{{"inputs": [[...], ...]}}, or records as {RECORDS_LIST}'
    )


def _keys() -> str:
    return ", ".join((*INPUT_KEYS, "data"))


def _shapes() -> str:
    return "send one of: " + " | ".join(SHAPES) + ' (each object may add "params": {...})'


def _json_format(content_type: str | None) -> str | None:
    """The `format` parameter MLflow 1.x clients put on a JSON content type, if any."""
    _, _, parameters = (content_type or "").partition(";")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "format":
            form = value.strip().strip('"').lower()
            if form not in JSON_FORMATS:
                raise UnsupportedMediaType(
                    f"unsupported format '{value.strip()}' (send {' or '.join(JSON_FORMATS)}, "
                    "or no format)"
                )
            return form
    return None


def _proba_param(params: Any) -> bool:
    if params is None:
        return False
    if not isinstance(params, dict):
        raise DataError("'params' must be an object")
    proba = params.get("proba", False)
    if not isinstance(proba, bool):
        raise DataError("params: 'proba' must be true or false")
    return proba
