"""Open Inference (V2) tensors: their datatypes, their values read from JSON `data` or from
the binary tensor data extension's raw bytes onto a model's columns, and predictions written
back as raw bytes when a client asks for binary outputs.

The binary extension puts the request's JSON first (its length in the
`Inference-Header-Content-Length` header) and each input's bytes after it, in input order,
sized by `"parameters": {"binary_data_size": N}`; numbers are little-endian, BOOL one byte,
BYTES elements each a 4-byte little-endian length and that many bytes. Every size a client
states is checked against the others and against the body before anything is allocated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DataError
from .payloads import SCALARS, Limits, Payload

if TYPE_CHECKING:
    import numpy as np

DATATYPES = {
    "BOOL": "|b1",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP32": "<f4",
    "FP64": "<f8",
    "BYTES": "",
}
"""The datatypes a request may send, with the NumPy type of their raw bytes."""
_NONE = type(None)
_JSON_VALUES: dict[str, set[type]] = {
    "BOOL": {bool, _NONE},
    "BYTES": {str, _NONE},
    "FP32": {int, float, _NONE},
    "FP64": {int, float, _NONE},
    **{name: {int, _NONE} for name in DATATYPES if "INT" in name},
}
"""What a JSON `data` list of each datatype may hold (null is a missing value)."""
_JSON_NAMES = {bool: "a boolean", str: "a string", int: "a whole number", float: "a number"}
_HEADER_LENGTH = re.compile(r"\s*\d{1,15}\s*")
BINARY_SIZE = "binary_data_size"


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part of a V2 request body and the binary data after it, as the
    `Inference-Header-Content-Length` header divides them (all JSON without it)."""
    if header_length is None:
        return body, b""
    if not _HEADER_LENGTH.fullmatch(header_length):
        raise DataError(
            "the Inference-Header-Content-Length header must be a whole number of bytes"
        )
    length = int(header_length)
    if length > len(body):
        raise DataError(
            f"the Inference-Header-Content-Length header says {length:,} bytes of JSON, "
            f"but the body holds {len(body):,}"
        )
    return body[:length], body[length:]


@dataclass
class _Binary:
    """The binary data after the JSON, handed to the inputs that state a size, in order."""

    data: memoryview
    taken: int = 0

    def take(self, size: int, name: str) -> memoryview:
        left = len(self.data) - self.taken
        if size > left:
            raise DataError(
                f"input '{name}': {BINARY_SIZE} is {size:,} bytes, but only {left:,} bytes "
                "of binary data are left in the body"
            )
        self.taken += size
        return self.data[self.taken - size : self.taken]


def read_inputs(tensors: list[Any], binary: bytes, names: Sequence[str], limits: Limits) -> Payload:
    """V2 input tensors as the model's rows: one row-major 2-D tensor of all its columns, or
    one 1-D tensor per column; each from JSON `data` or from its bytes in `binary`."""
    data = _Binary(memoryview(binary))
    columns: dict[str, Any] = {}
    if len(tensors) == 1 and len(_shape(tensors[0])) == 2:
        tensor = tensors[0]
        rows, width = _shape(tensor)
        limits.check(rows=rows, columns=width)
        if width != len(names):
            raise DataError(
                f"input '{tensor['name']}' has {width} columns; the model takes "
                f"{len(names)} ({', '.join(names)})"
            )
        values = _values(tensor, rows * width, data)
        columns = {name: values[i::width] for i, name in enumerate(names)}
    else:
        limits.check(columns=len(tensors))
        for tensor in tensors:
            shape = _shape(tensor)
            if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
                raise DataError(
                    f"input '{tensor['name']}': send one 2-D tensor of rows, "
                    "or one 1-D tensor per column"
                )
            limits.check(rows=shape[0])
            columns[tensor["name"]] = _values(tensor, shape[0], data)
    left = len(data.data) - data.taken
    if left:
        raise DataError(
            f"the body holds {left:,} bytes of binary data beyond what the inputs' "
            f"{BINARY_SIZE} account for"
        )
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise DataError("the input tensors have different lengths")
    rows = lengths.pop()
    if all(isinstance(values, list) for values in columns.values()):
        return Payload(columns, rows=rows)
    return _frame(columns, rows)


def _frame(columns: dict[str, Any], rows: int) -> Payload:
    """Columns some of which came as raw bytes (NumPy arrays), as the frame the model core
    validates; the JSON ones were already held to one plain value a cell."""
    import pandas as pd

    return Payload(frame=pd.DataFrame(columns, index=pd.RangeIndex(rows)), rows=rows)


def _shape(tensor: Any) -> list[int]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise DataError("each input tensor must be an object with 'name', 'shape' and 'data'")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape
    ):
        raise DataError(f"input '{tensor['name']}': 'shape' must be a list of sizes")
    return shape


def _values(tensor: dict[str, Any], size: int, binary: _Binary) -> list[Any] | np.ndarray:
    """The `size` values of a tensor, checked against its datatype."""
    name = tensor["name"]
    datatype = tensor.get("datatype")
    if datatype is not None and datatype not in DATATYPES:
        raise DataError(
            f"input '{name}': unknown datatype {_shown(datatype)} "
            f"(send one of: {', '.join(DATATYPES)})"
        )
    parameters = tensor.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise DataError(f"input '{name}': 'parameters' must be an object")
    stated = (parameters or {}).get(BINARY_SIZE)
    if stated is None:
        return _json_values(tensor, size, datatype)
    if isinstance(stated, bool) or not isinstance(stated, int) or stated < 0:
        raise DataError(f"input '{name}': {BINARY_SIZE} must be a whole number of bytes")
    if datatype is None:
        raise DataError(f"input '{name}': binary data needs a 'datatype'")
    if "data" in tensor:
        raise DataError(f"input '{name}': send 'data' or {BINARY_SIZE}, not both")
    return _raw_values(binary.take(stated, name), datatype, size, name)


def _json_values(tensor: dict[str, Any], size: int, datatype: str | None) -> list[Any]:
    name = tensor["name"]
    data = tensor.get("data")
    if not isinstance(data, list):
        raise DataError(f"input '{name}': 'data' must be a list")
    if data and isinstance(data[0], list):
        data = [value for row in data for value in (row if isinstance(row, list) else [row])]
    if len(data) != size:
        raise DataError(f"input '{name}': 'data' holds {len(data)} values, its shape says {size}")
    allowed = _JSON_VALUES[datatype] if datatype else set(SCALARS)
    found = set(map(type, data))
    if not found <= allowed:
        value = next(value for value in data if type(value) not in allowed)
        position = data.index(value) + 1
        what = _JSON_NAMES.get(type(value), "a list or an object")
        kind = f"{datatype} data" if datatype else "data"
        raise DataError(f"input '{name}': value {position} of its {kind} is {what}")
    return data


def _raw_values(raw: memoryview, datatype: str, size: int, name: str) -> list[Any] | np.ndarray:
    import numpy as np

    if datatype == "BYTES":
        return _raw_bytes_values(raw, size, name)
    dtype = np.dtype(DATATYPES[datatype])
    if len(raw) != size * dtype.itemsize:
        raise DataError(
            f"input '{name}': {len(raw):,} bytes of {datatype} data, its shape needs "
            f"{size * dtype.itemsize:,}"
        )
    if datatype == "BOOL":
        return np.frombuffer(raw, dtype=np.uint8) != 0
    return np.frombuffer(raw, dtype=dtype)


def _raw_bytes_values(raw: memoryview, size: int, name: str) -> list[Any]:
    """BYTES elements, each a 4-byte little-endian length and its UTF-8 text."""
    if 4 * size > len(raw):
        raise DataError(
            f"input '{name}': {len(raw):,} bytes cannot hold {size:,} BYTES elements "
            "(each needs a 4-byte length)"
        )
    data = bytes(raw)
    values: list[Any] = []
    position, end = 0, len(data)
    for element in range(size):
        length = int.from_bytes(data[position : position + 4], "little")
        position += 4
        if length > end - position:
            raise DataError(
                f"input '{name}': BYTES element {element + 1} says {length:,} bytes, past the "
                f"end of its {end:,}"
            )
        try:
            values.append(data[position : position + length].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(
                f"input '{name}': BYTES element {element + 1} is not UTF-8 text"
            ) from exc
        position += length
        if element + 1 < size and end - position < 4:
            raise DataError(
                f"input '{name}': its BYTES data ends after {element + 1:,} of {size:,} elements"
            )
    if position != end:
        raise DataError(
            f"input '{name}': {end - position:,} bytes of its BYTES data follow its "
            f"{size:,} elements"
        )
    return values


def raw_bytes(values: np.ndarray, datatype: str) -> bytes:
    """An output tensor's values as the binary extension writes them."""
    import numpy as np

    if datatype == "BYTES":
        encoded = [_text(value).encode("utf-8") for value in values.tolist()]
        return b"".join(len(item).to_bytes(4, "little") + item for item in encoded)
    return np.ascontiguousarray(values, dtype=DATATYPES[datatype]).tobytes()


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


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
