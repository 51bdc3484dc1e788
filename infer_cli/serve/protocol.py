"""The wire formats of the prediction server, as pure functions of bytes.

Requests become `Payload`s (the rows, column by column, or a DataFrame for CSV and
Parquet) and predictions become response bodies, for MLflow's `/invocations` and for the
Open Inference Protocol (KServe / MLServer V2). Nothing here touches a socket or a model.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DataError, SchemaError, first_line
from .errors import UnsupportedMediaType

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

Columns = dict[str, list[Any]]
INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")
ACCEPTED_TYPES = JSON_TYPES + CSV_TYPES + PARQUET_TYPES
V2_OUTPUTS = ("predict", "predict_proba")
SCALARS = (str, int, float, bool, type(None))
"""What a cell may hold: anything else (a list, an object) is not one value."""


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
        invocation = _decode_json_invocation(body, names)
        _check_cells(invocation.payload)
        return invocation
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
    _check_cells(payload)
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


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _dump(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


# Digits as zeros and `+` dropped: a number that may lie beyond a double (309 digits, or an
# exponent of three) shows as a run of zeros or as "e000", found at memchr speed; only then
# is every number checked, which halves the parser's speed.
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789E", b"000000000e")
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _load_json(body: bytes) -> Any:
    """The JSON document of a body, refusing what no column can hold: numbers beyond a
    double, Infinity, lone surrogates (which pandas and Arrow cannot encode)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"the request body is not UTF-8 text (byte {exc.start})") from exc
    digits = body.translate(_DIGITS_AS_ZEROS, b"+")
    checked = b"0" * 309 in digits or b"e000" in digits
    try:
        if checked:
            document = json.loads(
                text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_constant
            )
        else:
            document = json.loads(text, parse_constant=_constant)
    except RecursionError as exc:
        raise DataError("the JSON is nested too deeply") from exc
    except ValueError as exc:
        raise DataError(f"malformed JSON: {first_line(exc)}") from exc
    if _MAYBE_SURROGATE.search(body):
        _refuse_lone_surrogates(document)
    return document


def _parse_int(text: str) -> int:
    value = int(text)
    if len(text) > 308:
        try:
            float(value)
        except OverflowError:
            raise DataError(
                f"the request holds an integer of {len(text)} digits, beyond any column's range"
            ) from None
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise DataError("the request holds a number beyond a double's range (about 1.8e308)")
    return value


def _constant(name: str) -> float:
    if name == "NaN":
        return math.nan  # a missing value, as null is
    raise DataError(f"the request holds {name}: numbers must be finite")


def _refuse_lone_surrogates(document: Any) -> None:
    """A \\uD800-\\uDFFF escape that is not half of a pair decodes to a string that no
    UTF-8 encoder takes."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError as exc:
                    code = ord(item[exc.start])
                    raise DataError(
                        f"the request holds a lone surrogate (\\u{code:04x}), which is not a "
                        "character"
                    ) from None
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())


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
    if not isinstance(columns, list) or not all(
        isinstance(name, str) or (isinstance(name, (int, float)) and not isinstance(name, bool))
        for name in columns
    ):
        raise DataError("'dataframe_split': 'columns' must be a list of names")
    return _payload_from_rows(data, [str(name) for name in columns], "dataframe_split")


def _payload_from_rows(data: list[Any], columns: Sequence[str], key: str) -> Payload:
    """Row-major values under known column names; a row must hold one value per column."""
    width = len(columns)
    if len(set(columns)) != width:
        raise DataError(f"'{key}': column '{_duplicate(columns)}' appears twice")
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


def _duplicate(names: Sequence[str]) -> str:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    raise ValueError("no duplicate")


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
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise DataError("each input tensor must be an object with 'name', 'shape' and 'data'")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape
    ):
        raise DataError(f"input '{tensor['name']}': 'shape' must be a list of sizes")
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


def _check_cells(payload: Payload) -> None:
    """Every cell holds one value: a list or an object in a cell is refused here, before
    pandas or a model meets it (and before anything recurses into it)."""
    for name, values in (payload.columns or {}).items():
        if not set(map(type, values)).issubset(SCALARS):
            position, value = next(
                (position, value)
                for position, value in enumerate(values)
                if type(value) not in SCALARS
            )
            kind = "a list" if isinstance(value, list) else "an object"
            raise DataError(
                f"row {position + 1}, column '{name}': {kind} is not one value "
                "(send one number, string, boolean or null per cell)"
            )


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
    return _to_frame(table)


def _read_parquet(body: bytes) -> pd.DataFrame:
    import pyarrow as pa
    from pyarrow import parquet

    try:
        table = parquet.read_table(pa.BufferReader(body))
    except (pa.ArrowException, OSError) as exc:
        reason = first_line(exc).replace(" '<Buffer>'", "")
        raise DataError(f"not a readable Parquet body ({reason})") from exc
    return _to_frame(table)


def _to_frame(table: pa.Table) -> pd.DataFrame:
    """A table as the frame the model core takes: one column per name, one value per cell,
    text as UTF-8 strings."""
    import pyarrow as pa

    names = [str(name) for name in table.column_names]
    if len(set(names)) != len(names):
        raise DataError(f"column '{_duplicate(names)}' appears twice")
    for position, column in enumerate(table.schema):
        kind = column.type
        cell = kind.value_type if pa.types.is_dictionary(kind) else kind
        if pa.types.is_nested(cell):
            raise DataError(f"column '{column.name}' holds {kind} values: send one value per cell")
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            try:
                table = table.set_column(
                    position, column.name, table.column(position).cast(pa.string())
                )
            except pa.ArrowInvalid as exc:
                raise DataError(
                    f"column '{column.name}' holds bytes that are not UTF-8 text"
                ) from exc
    return table.to_pandas()


def _without_row_text(message: str) -> str:
    # Arrow appends the offending line ("Expected 4 columns, got 5: 1,2,3,4,5"); a client's
    # own data is not repeated back to it.
    first = message.strip().splitlines()[0] if message.strip() else "unreadable"
    head, _, _ = first.partition(": ")
    reason = first[len(head) + 2 :] if head.startswith("CSV parse error") else first
    return reason.split(": ", 1)[0]
