"""The prediction log over real sockets: every answered row recorded once, in files that
appear only whole, with the request ids the replies carried; rows dropped and counted, never
requests, when the log cannot keep up or its directory cannot be written."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infer_cli.core import load_model
from infer_cli.errors import UsageError
from infer_cli.serve import ServeOptions
from infer_cli.serve.routes import App
from infer_cli.tables.log_files import log_files, read_log

from conftest import COLUMNS, Server, call

HEX_ID = re.compile(r"[0-9a-f]{32}")


def _score(
    connection: http.client.HTTPConnection, rows: list[list[float]], **extra: Any
) -> tuple[int, str, list[Any]]:
    headers = {"Content-Type": "application/json", **extra.pop("headers", {})}
    document = {"dataframe_split": {"columns": [*COLUMNS, "customer_id"], "data": rows}, **extra}
    connection.request("POST", "/invocations", json.dumps(document).encode(), headers)
    response = connection.getresponse()
    body = json.loads(response.read())
    return response.status, response.getheader("X-Request-Id") or "", body["predictions"]


def _rows(seed: int, count: int = 1) -> list[list[Any]]:
    values = np.random.default_rng(seed).normal(size=(count, 4)).round(6).tolist()
    return [[*row, f"c{seed}-{index}"] for index, row in enumerate(values)]


def _leftovers(directory: Path) -> list[str]:
    return [path.name for path in directory.iterdir() if path.name.startswith(".")]


def test_concurrent_requests_are_each_logged_once_in_whole_rotated_files(
    serve: Server, numeric_model: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "log"
    # About 2 KiB a file: rows of a few requests each, so the run rolls over many files.
    app, port = serve(
        load_model(numeric_model), log_predictions=str(directory), log_rotate_mb=0.002
    )
    answers: dict[str, tuple[str, str]] = {}
    failures: list[Any] = []

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        for index in range(50):
            seed = number * 1000 + index
            sent = {"X-Request-Id": f"client-{seed}"} if index % 2 else {}
            status, given, predictions = _score(connection, _rows(seed), headers=sent)
            if status != 200 or (sent and given != sent["X-Request-Id"]):
                failures.append((status, given))
            answers[given] = (predictions[0], f"c{seed}-0")
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    app.close()
    assert failures == [] and len(answers) == 400
    assert sum(bool(HEX_ID.fullmatch(given)) for given in answers) == 200
    table, files = read_log(directory)
    assert files > 2 and files == len(log_files(directory))
    assert _leftovers(directory) == []
    logged = table.to_pylist()
    assert sorted(row["request_id"] for row in logged) == sorted(answers)
    for row in logged:
        assert (row["prediction"], row["inputs.customer_id"]) == answers[row["request_id"]]
        assert row["model"] == "numeric" and row["row"] == 0 and row["latency_ms"] > 0
    assert {row["model_sha256"] for row in logged} == {load_model(numeric_model).card.sha256}
    assert app.stats.log_rows == {"written": 400, "dropped": 0, "files": files}


def test_json_lines_hold_probabilities_and_client_ids_are_checked(
    serve: Server, numeric_model: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "log"
    app, port = serve(load_model(numeric_model), log_predictions=str(directory), log_format="jsonl")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    status, given, predictions = _score(
        connection, _rows(1, 3), params={"proba": True}, headers={"X-Request-Id": "order-7:a/b"}
    )
    assert (status, given) == (200, "order-7:a/b")
    connection.close()
    hostile = [b"x" * 129, b"<script>alert(1)</script>", b"a b", b"\xff\xfe", b""]
    ids = []
    for value in hostile:
        body = json.dumps({"inputs": [[1.0, 2.0, 3.0, 4.0]]}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nX-Request-Id: " + value + b"\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 ")
        found = re.search(rb"\r\nX-Request-Id: ([^\r]*)\r\n", reply)
        assert found is not None and HEX_ID.fullmatch(found.group(1).decode())
        ids.append(found.group(1).decode())
        assert value not in reply.split(b"\r\n\r\n")[0] or not value
    assert len(set(ids)) == len(hostile)
    # A reply to what is not a prediction carries no id; an error to a prediction does.
    assert "x-request-id" not in call(port, "GET", "/ping")[1]
    status, headers, _ = call(port, "POST", "/invocations", b'{"inputs": [[1, 2]]}')
    assert status == 400 and HEX_ID.fullmatch(headers["x-request-id"])
    app.close()
    (path,) = log_files(directory)
    assert path.suffix == ".jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    first = [record for record in records if record["request_id"] == "order-7:a/b"]
    assert [record["row"] for record in first] == [0, 1, 2]
    assert [record["prediction"] for record in first] == predictions
    assert set(first[0]["probabilities"]) == {"no", "yes"}
    assert sum(first[0]["probabilities"].values()) == pytest.approx(1.0)
    assert first[0]["inputs"]["customer_id"] == "c1-0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first[0]["time"])
    rest = [record for record in records if record["request_id"] in ids]
    assert len(rest) == len(hostile) and all(r["probabilities"] is None for r in rest)
    assert read_log(directory)[0].num_rows == 3 + len(hostile)


def test_a_full_queue_drops_and_counts_rows_and_serving_goes_on(
    serve: Server, numeric_model: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "log"
    app, port = serve(load_model(numeric_model), log_predictions=str(directory), log_queue_rows=2)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    for seed in range(10):
        assert _score(connection, _rows(seed, 3))[0] == 200
    connection.close()
    text = call(port, "GET", "/metrics")[2].decode()
    assert "infer_cli_prediction_log_dropped_total 30\n" in text
    app.close()
    assert app.stats.log_rows["dropped"] == 30 and app.stats.log_rows["written"] == 0
    assert not directory.exists() or list(directory.iterdir()) == []


def test_an_unwritable_directory_drops_and_counts_rows_until_it_is_back(
    serve: Server, numeric_model: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "log"
    app, port = serve(load_model(numeric_model), log_predictions=str(directory), log_rotate_mb=1e-6)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    answered = [_score(connection, _rows(seed))[1] for seed in range(3)]
    _wait_for(lambda: app.stats.log_rows["written"] == 3)
    # The directory gone and a file in its place: nothing can be made or renamed in it (as
    # root, for whom a chmod would not do).
    directory.rename(tmp_path / "away")
    directory.write_text("not a directory")
    answered += [_score(connection, _rows(seed))[1] for seed in range(3, 8)]
    _wait_for(lambda: app.stats.log_rows["dropped"] == 5)
    directory.unlink()
    (tmp_path / "away").rename(directory)
    answered += [_score(connection, _rows(seed))[1] for seed in range(8, 10)]
    connection.close()
    app.close()
    assert app.stats.log_rows["written"] == 5 and app.stats.log_rows["dropped"] == 5
    assert _leftovers(directory) == []
    logged = read_log(directory)[0].column("request_id").to_pylist()
    assert sorted(logged) == sorted(answered[:3] + answered[8:])


def _wait_for(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the log's writer did not get there"
        time.sleep(0.02)


def test_a_log_directory_that_cannot_be_made_is_refused_at_start(
    tmp_path: Path, cli: Any, numeric_model: Path
) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="cannot write there"):
        ServeOptions(log_predictions=str(tmp_path / "file" / "log")).check()
    result: Any = cli(
        "serve", "-m", numeric_model, "--port", "0", "--log-predictions", tmp_path / "file" / "log"
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"infer-cli: error: --log-predictions {tmp_path / 'file' / 'log'}: cannot write there "
        "(not a directory)"
    ]
    assert not os.path.exists(tmp_path / "file" / "log")
    assert App(ServeOptions()).prediction_log is None
