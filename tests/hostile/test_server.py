"""The server under attack, over real sockets: every hostile request gets its 4xx, never a
500, and the server goes on answering good requests after each one."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from sklearn.linear_model import LogisticRegression

from infer_cli.core.card import ModelCard
from infer_cli.core.model import Model
from infer_cli.core.signature import Column, Signature
from infer_cli.core.store import load_model
from infer_cli.report.serve import render_banner
from infer_cli.serve import routes
from infer_cli.serve.access_log import log
from infer_cli.serve.process import ServeConfig
from infer_cli.serve.routes import App, ServeOptions

from conftest import COLUMNS, Server, make_server

PINNED = ["count", "ratio", "flag"]


@pytest.fixture(scope="module")
def pinned_model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """Columns as an MLflow signature pins them: int64 (`long`), float32 (`float`), boolean."""
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


class Client:
    """One keep-alive connection to a server under test."""

    def __init__(self, port: int, names: list[str], good_row: list[Any]) -> None:
        self.port = port
        self.names = names
        self.good_row = good_row
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(
        self, path: str, body: bytes, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any]]:
        try:
            self.connection.request("POST", path, body, {"Content-Type": content_type})
            response = self.connection.getresponse()
            data = response.read()
        except (http.client.HTTPException, OSError):
            # A refusal may close the connection; the next request opens another.
            self.connection.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
        return response.status, json.loads(data)

    def still_serves(self) -> None:
        document = {"dataframe_split": {"columns": self.names, "data": [self.good_row]}}
        status, answer = self.post("/invocations", json.dumps(document).encode())
        assert status == 200, answer
        assert len(answer["predictions"]) == 1

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def iris(serve: Server, trained_models: dict[str, Path]) -> Iterator[Client]:
    model = load_model(trained_models["iris"])
    _, port = serve(model)
    client = Client(port, model.signature.names, [5.1, 3.5, 1.4, 0.2])
    yield client
    client.close()


@pytest.fixture
def pinned(serve: Server, pinned_model: Model) -> Iterator[Client]:
    _, port = serve(pinned_model)
    client = Client(port, PINNED, [3, 0.5, True])
    yield client
    client.close()


@pytest.fixture
def churn(serve: Server, trained_models: dict[str, Path]) -> Iterator[Client]:
    model = load_model(trained_models["churn"])
    _, port = serve(model)
    row = [model.card.example[0].get(name) for name in model.signature.names]
    client = Client(port, model.signature.names, row)
    yield client
    client.close()


def _split(names: list[str], *rows: str) -> bytes:
    """A dataframe_split body with rows written as raw JSON text."""
    data = ",".join(f"[{row}]" for row in rows)
    return f'{{"dataframe_split": {{"columns": {json.dumps(names)}, "data": [{data}]}}}}'.encode()


def _v2(width: int, values: str) -> bytes:
    return (
        f'{{"inputs": [{{"name": "x", "shape": [1, {width}], "datatype": "FP64", '
        f'"data": [{values}]}}]}}'
    ).encode()


DEEP = 100_000
HUGE_INTEGER = "9" * 400
HOSTILE_IRIS = {
    "lists nested 100,000 deep": b'{"inputs": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    "objects nested 100,000 deep": b'{"inputs": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}",
    "lists nested 990 deep in a cell": _split(
        ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        "[" * 990 + "]" * 990 + ",1,1,1",
    ),
    "an integer of 400 digits": _split(
        ["sepal_length", "sepal_width", "petal_length", "petal_width"], f"{HUGE_INTEGER},1,1,1"
    ),
    "an integer of 400 digits in a V2 tensor": _v2(4, f"{HUGE_INTEGER},1,1,1"),
    "a float literal beyond a double": _split(
        ["sepal_length", "sepal_width", "petal_length", "petal_width"], "1e999,1,1,1"
    ),
    "Infinity": _split(
        ["sepal_length", "sepal_width", "petal_length", "petal_width"], "Infinity,1,1,1"
    ),
    "-Infinity in a V2 tensor": _v2(4, "-Infinity,1,1,1"),
    "a lone surrogate as a value": _split(
        ["sepal_length", "sepal_width", "petal_length", "petal_width"], '"\\ud800",1,1,1'
    ),
    "a lone surrogate as a column name": b'{"dataframe_split": {"columns": ["\\udfff"], '
    b'"data": [[1]]}}',
    "a lone surrogate as a record key": b'{"dataframe_records": [{"\\ud800": 1}]}',
    "a lone surrogate in a V2 tensor": _v2(4, '"\\udc00",1,1,1'),
    "a lone surrogate as a V2 tensor name": b'{"inputs": [{"name": "\\ud800", "shape": [1], '
    b'"data": [1]}]}',
    "a lone surrogate in raw UTF-8": b'{"inputs": [["\xed\xa0\x80", 1, 1, 1]]}',
    "a lone surrogate in the V2 id": b'{"id": "\\ud800", "inputs": [{"name": "x", '
    b'"shape": [1, 4], "data": [1, 1, 1, 1]}]}',
    "a list as a column name": b'{"dataframe_split": {"columns": [[1]], "data": [[1]]}}',
    "an object as a V2 tensor name": b'{"inputs": [{"name": {"a": 1}, "shape": [1], "data": [1]}]}',
    "an object as a V2 id": b'{"id": {}, "inputs": [{"name": "x", "shape": [1, 4], '
    b'"data": [1, 1, 1, 1]}]}',
    "a list as a V2 output name": b'{"inputs": [{"name": "x", "shape": [1, 4], '
    b'"data": [1, 1, 1, 1]}], "outputs": [{"name": ["predict"]}]}',
}


@pytest.mark.parametrize("attack", list(HOSTILE_IRIS))
def test_hostile_json_is_a_400(iris: Client, attack: str) -> None:
    body = HOSTILE_IRIS[attack]
    path = "/v2/models/iris/infer" if "V2" in attack else "/invocations"
    status, answer = iris.post(path, body)
    assert status == 400, answer
    if "V2" in attack:
        assert set(answer) == {"error"} and "\n" not in answer["error"]
    else:
        assert answer["error_code"] == "BAD_REQUEST"
        assert "\n" not in answer["message"]
    iris.still_serves()


HOSTILE_PINNED = {
    "NaN in a whole-number column": "NaN,0.5,true",
    "Infinity in a whole-number column": "Infinity,0.5,true",
    "-Infinity in a float32 column": "1,-Infinity,true",
    "1e999 in a whole-number column": "1e999,0.5,true",
    "an integer of 400 digits in a whole-number column": f"{HUGE_INTEGER},0.5,true",
    "an integer beyond int64": f"{2**64},0.5,true",
    "a float beyond float32": "1,1e300,true",
    "a list in a boolean column": "1,0.5,[true]",
    "an object in a whole-number column": '{"a": 1},0.5,true',
    "a lone surrogate in a boolean column": '1,0.5,"\\udbff"',
}


@pytest.mark.parametrize("attack", list(HOSTILE_PINNED))
def test_hostile_values_in_pinned_columns_are_a_400(pinned: Client, attack: str) -> None:
    status, answer = pinned.post("/invocations", _split(PINNED, HOSTILE_PINNED[attack]))
    assert status == 400, answer
    pinned.still_serves()


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


HOSTILE_PARQUET = {
    "a list column": pa.table(
        {
            "sepal_length": pa.array([[1.0, 2.0]]),
            "sepal_width": [1.0],
            "petal_length": [1.0],
            "petal_width": [1.0],
        }
    ),
    "a struct column": pa.table(
        {
            "sepal_length": pa.array([{"a": 1.0}]),
            "sepal_width": [1.0],
            "petal_length": [1.0],
            "petal_width": [1.0],
        }
    ),
    "a binary column of invalid UTF-8": pa.table(
        {
            "sepal_length": pa.array([b"\xed\xa0\x80"], pa.binary()),
            "sepal_width": [1.0],
            "petal_length": [1.0],
            "petal_width": [1.0],
        }
    ),
}


@pytest.mark.parametrize("attack", list(HOSTILE_PARQUET))
def test_hostile_parquet_is_a_400(iris: Client, attack: str) -> None:
    body = _parquet(HOSTILE_PARQUET[attack])
    status, answer = iris.post("/invocations", body, "application/vnd.apache.parquet")
    assert status == 400, answer
    iris.still_serves()


def test_a_column_twice_is_a_400(iris: Client) -> None:
    names = ",".join(iris.names)
    csv_body = f"{names},{names}\n5.1,3.5,1.4,0.2,5.1,3.5,1.4,0.2\n".encode()
    twice = pa.table([pa.array([1.0])] * 8, names=iris.names * 2)
    for body, content_type in (
        (csv_body, "text/csv"),
        (_parquet(twice), "application/vnd.apache.parquet"),
    ):
        status, answer = iris.post("/invocations", body, content_type)
        assert status == 400, answer
        assert "sepal_length" in answer["message"]
        iris.still_serves()


def test_bytes_that_are_not_text_in_a_text_column_are_a_400(
    serve: Server, trained_models: dict[str, Path]
) -> None:
    _, port = serve(load_model(trained_models["reviews"]))
    client = Client(port, ["review"], ["Works well."])
    body = _parquet(pa.table({"review": pa.array([b"\xed\xa0\x80"], pa.binary())}))
    status, answer = client.post("/invocations", body, "application/vnd.apache.parquet")
    assert (status, answer["message"]) == (
        400,
        "column 'review' holds bytes that are not UTF-8 text",
    )
    client.still_serves()
    client.close()


NON_FINITE_TEXT = ["1e999", "-inf"]
# Values and shapes that a careless or hostile client puts anywhere a value may go.
FUZZ_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    "",
    "abc",
    *NON_FINITE_TEXT,
    "NaN",
    2**63,
    2**64,
    -(2**63) - 1,
    1e308,
    [],
    {},
    [1],
    {"a": 1},
    [[1, [2]]],
    "x" * 200_000,
    "\x00\x1b[2J",
    "\u202e",
    "٣",
    "3.0",
]


def _fuzz_documents(names: list[str], values: list[Any]) -> Iterator[tuple[str, Any]]:
    width = len(names)
    for value in values:
        row = [value] * width
        record = dict.fromkeys(names, value)
        yield "/invocations", {"dataframe_split": {"columns": names, "data": [row]}}
        yield "/invocations", {"dataframe_split": {"columns": names, "data": [row, row[:-1]]}}
        yield "/invocations", {"dataframe_split": {"columns": value, "data": [row]}}
        yield "/invocations", {"dataframe_split": {"columns": names, "data": value}}
        yield "/invocations", {"dataframe_split": {"columns": names, "data": [value]}}
        yield "/invocations", {"dataframe_split": value}
        yield "/invocations", {"dataframe_records": [record, {}]}
        yield "/invocations", {"dataframe_records": value}
        yield "/invocations", {"dataframe_records": [value]}
        for key in ("instances", "inputs"):
            yield "/invocations", {key: [row]}
            yield "/invocations", {key: [record]}
            yield "/invocations", {key: {name: [value, value] for name in names}}
            yield "/invocations", {key: {name: value for name in names}}
            yield "/invocations", {key: value}
            yield "/invocations", {key: [value, row]}
        yield "/invocations", {"data": [row]}
        yield "/invocations", {"data": value}
        yield "/invocations", {"columns": value, "data": [row], "index": value}
        yield "/invocations", [record, value]
        yield "/invocations", [value]
        yield "/invocations", value
        yield "/invocations", {"inputs": [row], "params": value}
        yield "/invocations", {"inputs": [row], "params": {"proba": value}}
        yield "/invocations", {"inputs": [row], "params": {"threshold": value, "proba": True}}
        tensor = {"name": "x", "shape": [1, width], "datatype": "FP64", "data": row}
        yield "v2", {"inputs": [tensor]}
        yield "v2", {"inputs": [{**tensor, "data": [row]}]}
        yield "v2", {"inputs": [{**tensor, "data": value}]}
        yield "v2", {"inputs": [{**tensor, "shape": value}]}
        yield "v2", {"inputs": [{**tensor, "shape": [value, width]}]}
        yield "v2", {"inputs": [{**tensor, "name": value}]}
        yield "v2", {"inputs": [{"name": name, "shape": [2], "data": [value, 1]} for name in names]}
        yield "v2", {"inputs": value}
        yield "v2", {"inputs": [value]}
        yield "v2", {"inputs": [tensor], "outputs": value}
        yield "v2", {"inputs": [tensor], "outputs": [value]}
        yield "v2", {"inputs": [tensor], "outputs": [{"name": value}]}
        yield "v2", {"inputs": [tensor], "id": value}
        yield "v2", {"inputs": [tensor], "parameters": value}
        yield "v2", {"inputs": [tensor], "parameters": {"threshold": value}}
    yield "v2", {"inputs": [{"name": "x", "shape": [2**62, 2**62], "data": []}]}
    yield "v2", {"inputs": [{"name": "x", "shape": [1, width, 1], "data": [1] * width}]}
    yield "v2", {"inputs": [{"name": "x", "shape": [2, width], "data": [[1], [1] * (2 * width)]}]}
    yield "v2", {"inputs": [{"name": name, "shape": [], "data": []} for name in names]}


@pytest.mark.parametrize("model", ["iris", "pinned", "churn"])
def test_fuzzed_json_never_gets_a_5xx(model: str, request: pytest.FixtureRequest) -> None:
    client: Client = request.getfixturevalue(model)
    v2_path = f"/v2/models/{model}/infer"
    failures = []
    values = [v for v in FUZZ_VALUES if model != "pinned" or v not in NON_FINITE_TEXT]
    for path, document in _fuzz_documents(client.names, values):
        body = json.dumps(document).encode()
        status, answer = client.post(v2_path if path == "v2" else path, body)
        if status >= 500:
            failures.append((status, answer, body[:200]))
    assert failures == []
    client.still_serves()


def test_non_finite_text_in_a_whole_number_column_is_a_400(pinned: Client) -> None:
    for text in NON_FINITE_TEXT:
        status, answer = pinned.post("/invocations", _split(PINNED, f'"{text}",0.5,true'))
        assert status == 400, answer
    pinned.still_serves()


def test_a_bare_cr_in_a_header_value_is_refused(iris: Client) -> None:
    for header in (b"X-Note: a\rb", b"X-Note: a\r", b"X-Note: a\x00b"):
        with socket.create_connection(("127.0.0.1", iris.port), timeout=20) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\n" + header + b"\r\n\r\n")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 400 "), (header, reply)
        iris.still_serves()


class BrokenEstimator:
    """Fails with a message quoting what it was given, as library errors do."""

    feature_names_in_ = np.array(COLUMNS, dtype=object)

    def predict(self, features: Any) -> Any:
        raise RuntimeError("cannot use \x1b[2J\x1b]0;owned\x07 here\nTraceback-looking line")


def test_client_text_in_the_error_log_is_escaped(
    serve: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    card = ModelCard(
        task="classification",
        target="label",
        classes=["no", "yes"],
        signature=Signature(tuple(Column(name, "float") for name in COLUMNS)),
    )
    _, port = serve(Model(BrokenEstimator(), card, Path("broken")))
    body = json.dumps({"inputs": [[1, 2, 3, 4]]}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(
            b"POST /invocations?\x1b[31m\xe2\x80\xae HTTP/1.1\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 ")
    message = json.loads(payload)["message"]
    assert "\n" not in message and "Traceback-looking" not in message
    logged = capsys.readouterr().err
    assert "\x1b" not in logged and "\x07" not in logged and "\u202e" not in logged
    assert (
        # The head is read as Latin-1: U+202E arrives as three characters, one a C1 control.
        "error (POST /invocations?\\x1b[31m\xe2\\x80\xae): the model failed while predicting: "
        "cannot use \\x1b[2J\\x1b]0;owned\\x07 here\n"
    ) in logged


def test_a_traceback_in_the_log_is_escaped_line_by_line(capsys: pytest.CaptureFixture[str]) -> None:
    log(
        "internal error (GET /\x1b[2J):",
        "Traceback (most recent call last):\n  ValueError: '\x1b[31m\u202e\ud800'\n",
    )
    assert capsys.readouterr().err == (
        "internal error (GET /\\x1b[2J):\n"
        "Traceback (most recent call last):\n"
        "  ValueError: '\\x1b[31m\\u202e\\ud800'\n"
    )


IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _iris_bodies(rows: int, columns: list[str]) -> dict[str, tuple[str, bytes]]:
    """The same table in every shape a request may take: (path, content type, body)."""
    frame = pd.DataFrame({name: [1.5] * rows for name in columns})
    split = {"columns": columns, "data": frame.to_numpy().tolist()}
    records = frame.to_dict(orient="records")
    tensors = [{"name": name, "shape": [rows], "data": frame[name].tolist()} for name in columns]
    parquet = io.BytesIO()
    frame.to_parquet(parquet)
    return {
        "dataframe_split": ("application/json", json.dumps({"dataframe_split": split}).encode()),
        "dataframe_records": (
            "application/json",
            json.dumps({"dataframe_records": records}).encode(),
        ),
        "instances": ("application/json", json.dumps({"instances": records}).encode()),
        "MLflow 1.x split document": ("application/json", json.dumps(split).encode()),
        "MLflow 1.x records list": (
            "application/json; format=pandas-records",
            json.dumps(records).encode(),
        ),
        "inputs as columns": (
            "application/json",
            json.dumps({"inputs": frame.to_dict(orient="list")}).encode(),
        ),
        "V2 tensors": ("application/json", json.dumps({"inputs": tensors}).encode()),
        "CSV": ("text/csv", frame.to_csv(index=False).encode()),
        "Parquet": ("application/vnd.apache.parquet", parquet.getvalue()),
    }


@pytest.mark.parametrize("shape", list(_iris_bodies(1, IRIS)))
def test_rows_and_columns_over_the_limits_are_a_413_naming_them(
    serve: Server, trained_models: dict[str, Path], shape: str
) -> None:
    _, port = serve(load_model(trained_models["iris"]), max_rows=100, max_columns=6)
    client = Client(port, IRIS, [5.1, 3.5, 1.4, 0.2])
    path = "/v2/models/iris/infer" if shape.startswith("V2") else "/invocations"
    content_type, at_the_limit = _iris_bodies(100, IRIS)[shape]
    status, answer = client.post(path, at_the_limit, content_type)
    predictions = answer["outputs"][0]["data"] if "outputs" in answer else answer["predictions"]
    assert (status, len(predictions)) == (200, 100)
    content_type, too_long = _iris_bodies(101, IRIS)[shape]
    status, answer = client.post(path, too_long, content_type)
    assert (status, answer.get("message", answer.get("error"))) == (
        413,
        "the request holds 101 rows; this server takes at most 100 per request (serve --max-rows)",
    )
    client.still_serves()
    content_type, too_wide = _iris_bodies(1, [*IRIS, "x", "y", "z"])[shape]
    status, answer = client.post(path, too_wide, content_type)
    assert (status, answer.get("message", answer.get("error"))) == (
        413,
        "the request has 7 columns; this server takes at most 6 (serve --max-columns)",
    )
    client.still_serves()
    client.close()


MEMORY_HEADROOM = 512 * 1024 * 1024


@pytest.fixture
def bounded_server(trained_models: dict[str, Path]) -> Iterator[Callable[[str], Client]]:
    """`infer-cli serve` in its own process, its address space capped once it is ready at
    what it uses plus MEMORY_HEADROOM: a body that decodes to gigabytes fails the test with a
    MemoryError in the server instead of exhausting the machine."""
    started: list[subprocess.Popen[bytes]] = []

    def start(model: str) -> Client:
        executable = Path(sys.executable).with_name("infer-cli")
        process = subprocess.Popen(
            [str(executable), "serve", "-m", str(trained_models[model]), "-p", "0"],
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        started.append(process)
        assert process.stderr is not None
        for line in process.stderr:
            if found := re.search(rb"http://127\.0\.0\.1:(\d+)/invocations", line):
                break
        else:
            raise AssertionError("the server did not start")
        threading.Thread(target=process.stderr.read, daemon=True).start()
        status = Path(f"/proc/{process.pid}/status").read_text()
        used = int(re.search(r"VmSize:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
        resource.prlimit(process.pid, resource.RLIMIT_AS, (used + MEMORY_HEADROOM,) * 2)
        load = load_model(trained_models[model])
        row = [load.card.example[0].get(name) for name in load.signature.names]
        return Client(int(found.group(1)), load.signature.names, row)

    yield start
    for process in started:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_a_parquet_body_of_millions_of_rows_is_refused_from_its_footer(
    bounded_server: Callable[[str], Client],
) -> None:
    client = bounded_server("iris")
    rows = 20_000_000  # 640 MB of floats once decoded, from a body of a few hundred KB
    bomb = _parquet(pa.table({name: pa.nulls(rows, pa.float64()) for name in IRIS}))
    assert len(bomb) < 1024 * 1024
    status, answer = client.post("/invocations", bomb, "application/vnd.apache.parquet")
    assert (status, answer["message"]) == (
        413,
        "the request holds 20,000,000 rows; this server takes at most 1,000,000 per request "
        "(serve --max-rows)",
    )
    client.still_serves()


def test_parquet_text_that_decodes_to_gigabytes_is_refused(
    bounded_server: Callable[[str], Client],
) -> None:
    client = bounded_server("reviews")
    # One string of a megabyte, stood for by a dictionary index in each of 10,000 rows.
    review = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(10_000, dtype=np.int32)), pa.array(["great " * 200_000])
    )
    bomb = _parquet(pa.table({"review": review}))
    assert len(bomb) < 1024 * 1024
    status, answer = client.post("/invocations", bomb, "application/vnd.apache.parquet")
    assert status == 413, answer
    assert "text comes to more than 536,870,912 bytes once decoded" in answer["message"]
    client.still_serves()


def test_a_csv_header_of_a_million_columns_is_refused_before_parsing(
    bounded_server: Callable[[str], Client],
) -> None:
    client = bounded_server("iris")
    header = ",".join(f"c{i}" for i in range(1_000_000))
    status, answer = client.post("/invocations", f"{header}\n".encode(), "text/csv")
    assert (status, answer["message"]) == (
        413,
        "the request has 1,000,000 columns; this server takes at most 10,000 (serve --max-columns)",
    )
    client.still_serves()


LARGE = routes.FIRST_PART_ROWS + 10 * routes.MIN_PART_ROWS + 7
PARTS = 12  # the first, ten of the least size, and one of 7 rows


@pytest.fixture
def parts_of_min_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every part after the first holds MIN_PART_ROWS rows, however fast the model is."""
    monkeypatch.setattr(routes, "PART_SECONDS", 0.0)


@pytest.mark.usefixtures("parts_of_min_size")
def test_a_request_scored_in_parts_gets_the_answer_of_one_call(
    serve: Server, numeric_model: Path
) -> None:
    model = load_model(numeric_model)
    app, port = serve(model)
    frame = pd.DataFrame(np.random.default_rng(1).normal(size=(LARGE, 4)), columns=COLUMNS)
    expected = model.predict(frame, proba=True)
    labels, probabilities = expected.values.tolist(), expected.probabilities.tolist()
    client = Client(port, COLUMNS, [0.1, 0.2, 0.3, 0.4])
    split = {"columns": COLUMNS, "data": frame.to_numpy().tolist()}
    status, answer = client.post(
        "/invocations", json.dumps({"dataframe_split": split, "params": {"proba": True}}).encode()
    )
    assert status == 200
    # The same rows in other shapes of matrix may round the last bit differently in BLAS.
    assert answer["predictions"] == labels and answer["classes"] == ["no", "yes"]
    assert np.allclose(answer["probabilities"], probabilities, rtol=1e-12, atol=0)
    parquet = io.BytesIO()
    frame.to_parquet(parquet)
    for body, content_type in (
        (frame.to_csv(index=False).encode(), "text/csv"),
        (parquet.getvalue(), "application/vnd.apache.parquet"),
    ):
        status, answer = client.post("/invocations", body, content_type)
        assert (status, answer) == (200, {"predictions": labels})
    tensor = {"name": "x", "shape": [LARGE, 4], "datatype": "FP64", "data": split["data"]}
    document = {"id": "7", "inputs": [tensor], "outputs": [{"name": "predict_proba"}]}
    status, answer = client.post("/v2/models/numeric/infer", json.dumps(document).encode())
    assert status == 200
    assert answer["outputs"][0]["shape"] == [LARGE, 2]
    assert np.allclose(answer["outputs"][0]["data"], np.ravel(probabilities), rtol=1e-12, atol=0)
    calls = app.stats.batches
    assert calls == 4 * PARTS, "each request was scored in parts"
    client.close()


@pytest.mark.usefixtures("parts_of_min_size")
def test_a_bad_value_in_a_later_part_names_its_row(serve: Server, numeric_model: Path) -> None:
    _, port = serve(load_model(numeric_model))
    client = Client(port, COLUMNS, [0.1, 0.2, 0.3, 0.4])
    rows: list[list[Any]] = [[0.5, 0.5, 0.5, 0.5] for _ in range(LARGE)]
    late = routes.FIRST_PART_ROWS + 5 * routes.MIN_PART_ROWS + 3  # in the seventh part
    rows[late][1] = "abc"
    rows[LARGE - 2][2] = [1]
    body = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows}}).encode()
    status, answer = client.post("/invocations", body)
    assert (status, answer["message"]) == (
        400,
        f"row {late + 1}, column 'b': value not a number",
    )
    rows[late][1] = 0.5
    body = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows}}).encode()
    status, answer = client.post("/invocations", body)
    assert (status, answer["message"]) == (
        400,
        f"row {LARGE - 1}, column 'c': a list is not one value "
        "(send one number, string, boolean or null per cell)",
    )
    client.still_serves()
    client.close()


class Gate:
    """Wraps an estimator: calls of more than one row (the parts of a large request) wait
    for the test to let each through, and every call's size is recorded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.feature_names_in_ = inner.feature_names_in_
        self.calls: list[int] = []
        self.waiting = threading.Semaphore(0)
        self.permits = threading.Semaphore(0)

    def predict(self, features: Any) -> Any:
        if len(features) > 1:
            self.waiting.release()
            assert self.permits.acquire(timeout=30)
        self.calls.append(len(features))
        return self.inner.predict(features)


class Announcing(App):
    """An app that says when it has routed a request of one row."""

    def __init__(self, options: ServeOptions) -> None:
        super().__init__(options)
        self.small_routed = threading.Event()

    def route(self, request: Any) -> Any:
        routed = super().route(request)
        if request.body and len(json.loads(request.body)["inputs"]) == 1:
            self.small_routed.set()
        return routed


@pytest.mark.usefixtures("parts_of_min_size")
def test_a_small_request_is_answered_between_the_parts_of_a_large_one(
    numeric_model: Path,
) -> None:
    model = load_model(numeric_model)
    gate = Gate(model.estimator)
    model = Model(gate, model.card, model.path)
    app = Announcing(ServeOptions(access_log=False))
    app.model = model
    server = make_server(app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    big_rows = [[0.5, 0.1, -0.2, 0.3]] * LARGE
    answers: dict[str, tuple[int, Any]] = {}

    def send(name: str, rows: list[list[float]]) -> None:
        status, body = Client(port, COLUMNS, rows[0]).post(
            "/invocations", json.dumps({"inputs": rows}).encode()
        )
        answers[name] = (status, body)

    big = threading.Thread(target=send, args=("big", big_rows))
    big.start()
    assert gate.waiting.acquire(timeout=30)  # the first part is being scored
    small = threading.Thread(target=send, args=("small", [[0.1, 0.2, 0.3, 0.4]]))
    small.start()
    assert app.small_routed.wait(30)
    parts_let_through = 0
    while small.is_alive():
        gate.permits.release()
        parts_let_through += 1
        assert parts_let_through < PARTS, "the small request waited for the whole large one"
        while not gate.waiting.acquire(timeout=0.05) and small.is_alive():
            pass
    assert answers["small"][0] == 200
    assert "big" not in answers
    for _ in range(PARTS):
        gate.permits.release()
    big.join(30)
    assert answers["big"][0] == 200 and len(answers["big"][1]["predictions"]) == LARGE
    assert 1 in gate.calls[: parts_let_through + 1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("host", "warned"),
    [
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("::1", False),
        ("localhost", False),
        ("0.0.0.0", True),
        ("::", True),
        ("", True),
        ("192.168.1.20", True),
    ],
)
def test_serving_beyond_loopback_without_a_token_is_warned_about(
    numeric_model: Path, host: str, warned: bool
) -> None:
    # The banner is rendered without binding: a test listens on loopback only.
    output = io.StringIO()
    config = ServeConfig(numeric_model, host=host, port=5000)
    render_banner(Console(file=output, width=200), load_model(numeric_model), config, 1.0)
    text = output.getvalue()
    assert ("warning: listening on" in text) is warned
    if warned:
        assert f"listening on {host or 'every interface'} with no auth token" in text


def test_a_json_body_of_millions_of_rows_is_refused_before_it_is_parsed(
    bounded_server: Callable[[str], Client],
) -> None:
    client = bounded_server("iris")
    rows = 15_000_000  # 60 MB that Python's json would make 1.7 GB of lists
    body = b'{"inputs": [' + b"[1]," * (rows - 1) + b"[1]]}"
    status, answer = client.post("/invocations", body)
    assert (status, answer["message"]) == (
        413,
        f"the request holds {rows + 2:,} JSON arrays and objects, more than rows may be: this "
        "server takes at most 1,000,000 rows per request (serve --max-rows)",
    )
    client.still_serves()
