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

from ..core.threshold import DEFAULT_THRESHOLD
from ..errors import DataError, SchemaError
from . import tensors
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
BINARY_TYPE = "application/octet-stream"
"""What a V2 body with binary tensor data may be labelled (it needs no label)."""
ACCEPTED_TYPES = JSON_TYPES + CSV_TYPES + PARQUET_TYPES
V2_OUTPUTS = ("predict", "predict_proba")


@dataclass(frozen=True)
class Invocation:
    """A decoded `/invocations` request."""

    payload: Payload
    proba: bool = False
    threshold: Any = None
    """`params.threshold` as sent, checked against the model by the model core."""


@dataclass(frozen=True)
class InferRequest:
    """A decoded V2 `infer` request: the rows, the outputs asked for, the request id."""

    payload: Payload
    outputs: tuple[str, ...] = ("predict",)
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    binary: frozenset[str] = frozenset()
    """The outputs to write as raw bytes after the JSON (the binary tensor data extension)."""

    @property
    def threshold(self) -> Any:
        """`parameters.threshold` as sent, checked against the model by the model core."""
        return self.parameters.get("threshold")


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
    body: bytes,
    content_type: str | None,
    names: Sequence[str],
    limits: Limits | None = None,
    header_length: str | None = None,
) -> InferRequest:
    """Decode a V2 `infer` body: one row-major 2-D tensor, or one 1-D tensor per column, their
    values in JSON or, past the `Inference-Header-Content-Length` (`header_length`) bytes of
    JSON, as raw bytes. A body without a content type is JSON, as V2 clients send it."""
    kind = content_type.partition(";")[0].strip().lower() if content_type else None
    if kind not in (None, "", *JSON_TYPES, BINARY_TYPE):
        raise UnsupportedMediaType(
            f"unsupported Content-Type '{kind}' (send application/json, or no Content-Type)"
        )
    header, binary = tensors.split_body(body, header_length)
    reader = Reader(names, limits or Limits())
    document = reader.json(header)
    if not isinstance(document, dict):
        raise DataError("the request body must be a JSON object with an 'inputs' list")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise DataError("'inputs' must be a non-empty list of tensors")
    limits = reader.limits
    payload = tensors.read_inputs(inputs, binary, names, limits)
    _check(payload, limits)
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise DataError("'parameters' must be an object")
    all_binary = _flag(parameters, "binary_data_output", "parameters")
    outputs = document.get("outputs") or [{"name": "predict"}]
    if not isinstance(outputs, list) or not all(
        isinstance(output, dict) and isinstance(output.get("name"), str) for output in outputs
    ):
        raise DataError("'outputs' must be a list of objects with a 'name'")
    wanted = tuple(output["name"] for output in outputs)
    for name in wanted:
        if name not in V2_OUTPUTS:
            raise DataError(f"unknown output '{name}' (this model gives: {', '.join(V2_OUTPUTS)})")
    binary_outputs = frozenset(
        output["name"]
        for output in outputs
        if _flag(output.get("parameters"), "binary_data", f"output '{output['name']}'", all_binary)
    )
    request_id = document.get("id")
    if request_id is not None and (
        isinstance(request_id, bool) or not isinstance(request_id, (str, int, float))
    ):
        raise DataError("'id' must be a string")
    return InferRequest(
        payload,
        wanted,
        None if request_id is None else str(request_id),
        parameters,
        binary_outputs,
    )


def _flag(parameters: Any, name: str, where: str, default: bool = False) -> bool:
    if parameters is None:
        return default
    if not isinstance(parameters, dict):
        raise DataError(f"{where}: 'parameters' must be an object")
    value = parameters.get(name, default)
    if not isinstance(value, bool):
        raise DataError(f"{where}: '{name}' must be true or false")
    return value


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
    values: np.ndarray,
    probabilities: np.ndarray | None = None,
    *,
    flat: bool = False,
    binary: frozenset[str] = frozenset(),
) -> Part:
    """A part of a reply: probabilities as rows of lists (MLflow) or row-major (`flat`, V2);
    the V2 outputs named in `binary` as raw bytes."""
    datatype = tensor_datatype(values)
    proba = None
    if probabilities is not None:
        if "predict_proba" in binary:
            proba = tensors.raw_bytes(probabilities.reshape(-1), "FP64")
        else:
            rows = plain_list(probabilities.reshape(-1)) if flat else plain_rows(probabilities)
            proba = _items(rows)
    width = 0 if probabilities is None else int(probabilities.shape[1])
    if "predict" in binary:
        return Part(len(values), tensors.raw_bytes(values, datatype), proba, datatype, width)
    return Part(len(values), _items(plain_list(values)), proba, datatype, width)


def encode_predictions(
    values: np.ndarray,
    probabilities: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
    threshold: float | None = None,
) -> bytes:
    """`{"predictions": [...]}`, with `classes` and `probabilities` when they were asked for,
    and the decision `threshold` the labels were given at when it is not 0.5."""
    return predictions_body([encode_part(values, probabilities)], classes, threshold)


def predictions_body(
    parts: Sequence[Part],
    classes: Sequence[Any] | None = None,
    threshold: float | None = None,
) -> bytes:
    """The `/invocations` reply for the rows of `parts`, in order."""
    body = b'{"predictions":[' + _joined(part.values for part in parts) + b"]"
    if parts and parts[0].probabilities is not None:
        body += b',"classes":' + _dump([_plain(label) for label in classes or []])
        body += b',"probabilities":[' + _joined(part.probabilities for part in parts) + b"]"
    if _named(threshold):
        body += b',"threshold":' + _dump(threshold)
    return body + b"}"


def _named(threshold: float | None) -> bool:
    """Whether an answer names its threshold: any but none and the usual 0.5."""
    return threshold is not None and threshold != DEFAULT_THRESHOLD


def encode_infer_response(
    request: InferRequest,
    model_name: str,
    model_version: str,
    values: np.ndarray,
    probabilities: np.ndarray | None,
    classes: Sequence[Any] | None,
    threshold: float | None = None,
) -> bytes:
    """A V2 inference response holding the outputs the request asked for, and in its
    `parameters` the decision `threshold` the labels were given at when it is not 0.5."""
    part = encode_part(values, probabilities, flat=True, binary=request.binary)
    header, binary = infer_body(request, model_name, model_version, [part], classes, threshold)
    return header + binary


def infer_body(
    request: InferRequest,
    model_name: str,
    model_version: str,
    parts: Sequence[Part],
    classes: Sequence[Any] | None,
    threshold: float | None = None,
) -> tuple[bytes, bytes]:
    """The V2 reply for the rows of `parts` (written with `flat=True`), in order: its JSON,
    and the raw bytes of the outputs asked for in binary, which follow the JSON; the
    decision `threshold` the labels were given at is in its `parameters` when not 0.5."""
    rows = sum(part.rows for part in parts)
    first = parts[0]
    outputs: list[bytes] = []
    binary: list[bytes] = []
    for name in request.outputs:
        if name == "predict":
            head: dict[str, Any] = {"name": "predict", "shape": [rows], "datatype": first.datatype}
            items: list[bytes | None] = [part.values for part in parts]
        elif first.probabilities is not None:
            head = {
                "name": "predict_proba",
                "shape": [rows, first.width],
                "datatype": "FP64",
                "parameters": {"classes": [_plain(label) for label in classes or []]},
            }
            items = [part.probabilities for part in parts]
        else:
            continue
        if name in request.binary:
            data = b"".join(item for item in items if item)
            head["parameters"] = {**head.get("parameters", {}), tensors.BINARY_SIZE: len(data)}
            outputs.append(_dump(head))
            binary.append(data)
        else:
            outputs.append(_filled({**head, "data": []}, _joined(items)))
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    body = _dump(document)[:-1] + b',"outputs":[' + b",".join(outputs) + b"]"
    if request.id is not None:
        body += b',"id":' + _dump(request.id)
    if _named(threshold):
        body += b',"parameters":' + _dump({"threshold": threshold})
    return body + b"}", b"".join(binary)


def _items(values: list[Any]) -> bytes:
    return _dump(values)[1:-1]


def _joined(items: Iterable[bytes | None]) -> bytes:
    return b",".join(item for item in items if item)


def _filled(output: dict[str, Any], items: bytes) -> bytes:
    # A string value writes its quotes escaped, so `"data":[]` can only be the key itself.
    return _dump(output).replace(b'"data":[]', b'"data":[' + items + b"]", 1)


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
        return _invocation(payload, document.get("params"))
    value = document[key]
    if key == "dataframe_split":
        payload = reader.split(value)
    elif key == "dataframe_records":
        if not isinstance(value, list):
            raise DataError("'dataframe_records' must be a list of objects")
        payload = reader.records(value, key)
    else:
        payload = reader.instances(value, key)
    return _invocation(payload, document.get("params"))


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


def _invocation(payload: Payload, params: Any) -> Invocation:
    """The request around its rows, with what `params` asks: probabilities, a threshold.
    Other params are ignored, as MLflow ignores those a model does not take."""
    if params is None:
        return Invocation(payload)
    if not isinstance(params, dict):
        raise DataError("'params' must be an object")
    proba = params.get("proba", False)
    if not isinstance(proba, bool):
        raise DataError("params: 'proba' must be true or false")
    return Invocation(payload, proba, params.get("threshold"))
