"""The prediction server over real sockets on an ephemeral port, and `infer-cli serve` itself."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from infer_cli.core import Model, load_model, save_model
from infer_cli.serve.process import reload_model
from infer_cli.serve.routes import App, ServeOptions

from conftest import COLUMNS, Server, SlowEstimator, call


def post_json(port: int, path: str, document: Any) -> tuple[int, Any]:
    status, _, body = call(port, "POST", path, json.dumps(document).encode())
    return status, json.loads(body)


def raw_exchange(port: int, request: bytes, timeout: float = 20) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _iris_rows(sample_data: Path, count: int) -> pd.DataFrame:
    return pd.read_csv(sample_data / "iris_new.csv").head(count)


def test_every_input_shape_scores_the_same(
    serve: Server, trained_models: dict[str, Path], sample_data: Path
) -> None:
    model = load_model(trained_models["iris"])
    _, port = serve(model)
    rows = _iris_rows(sample_data, 5)
    expected = model.predict(rows).values.tolist()
    split = json.loads(rows.to_json(orient="split", index=False))
    records = rows.to_dict(orient="records")
    documents = [
        {"dataframe_split": split},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": rows.to_dict(orient="list")},
        {"inputs": rows.to_numpy().tolist()},
        # MLflow 1.x: rows in the model's order, pandas' split document, a list of records.
        {"data": rows.to_numpy().tolist()},
        {**split, "index": list(range(10, 15))},
        records,
    ]
    for document in documents:
        assert post_json(port, "/invocations", document) == (200, {"predictions": expected})
    for form, document in (("pandas-split", split), ("pandas-records", records)):
        content_type = f"application/json; format={form}"
        status, _, body = call(
            port, "POST", "/invocations", json.dumps(document).encode(), content_type
        )
        assert (status, json.loads(body)) == (200, {"predictions": expected})
    csv_body = rows.to_csv(index=False).encode()
    for content_type in ("text/csv", "application/csv; charset=utf-8"):
        status, _, body = call(port, "POST", "/invocations", csv_body, content_type)
        assert (status, json.loads(body)) == (200, {"predictions": expected})
    parquet = io.BytesIO()
    rows.to_parquet(parquet)
    status, _, body = call(
        port, "POST", "/invocations", parquet.getvalue(), "application/vnd.apache.parquet"
    )
    assert (status, json.loads(body)) == (200, {"predictions": expected})


TUTORIAL_BODY = '{"data": [[5.1, 3.5, 1.4, 0.2]]}'


def test_the_tutorials_curl_request_is_answered(tmp_path: Path, sample_data: Path) -> None:
    """`curl -X POST -H 'Content-Type:application/json' -d '{"data": [[5.1, 3.5, 1.4, 0.2]]}'`,
    as MLflow 1.x tutorials send it, to a model whose classes are 0, 1 and 2 as theirs are."""
    from conftest import run_infer_cli

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    frame = pd.read_csv(sample_data / "iris.csv")
    frame["species"] = frame["species"].map({"setosa": 0, "versicolor": 1, "virginica": 2})
    frame.to_csv(tmp_path / "iris.csv", index=False)
    trained = run_infer_cli(
        "train", "-i", tmp_path / "iris.csv", "--target", "species", "-o", tmp_path / "model", "-q"
    )
    assert trained.returncode == 0, trained.stderr
    process, port = _start_serving("-m", tmp_path / "model")
    try:
        answer = subprocess.run(
            ["curl", "-s", "-X", "POST", "-H", "Content-Type:application/json", "-d",
             TUTORIAL_BODY, f"http://localhost:{port}/invocations"],
            capture_output=True, timeout=60, check=True,
        )  # fmt: skip
    finally:
        process.send_signal(signal.SIGTERM)
    assert json.loads(answer.stdout) == {"predictions": [0]}
    assert _finish(process)[0] == 0


def test_mixed_column_types_and_probabilities(
    serve: Server, trained_models: dict[str, Path], sample_data: Path
) -> None:
    model = load_model(trained_models["churn"])
    _, port = serve(model)
    rows = pd.read_csv(sample_data / "churn_new.csv").head(4)
    expected = model.predict(rows, proba=True)
    records = json.loads(rows.to_json(orient="records"))
    status, document = post_json(
        port, "/invocations", {"dataframe_records": records, "params": {"proba": True}}
    )
    assert status == 200
    assert document["predictions"] == expected.values.tolist()
    assert document["classes"] == expected.classes
    assert np.allclose(document["probabilities"], expected.probabilities)


def test_fast_lane_matches_the_model(serve: Server, numeric_model: Path) -> None:
    model = load_model(numeric_model)
    _, port = serve(model)
    rows = pd.DataFrame(np.random.default_rng(1).normal(size=(6, 4)), columns=COLUMNS)
    expected = model.predict(rows, proba=True)
    split = json.loads(rows.to_json(orient="split", index=False))
    status, document = post_json(
        port, "/invocations", {"dataframe_split": split, "params": {"proba": True}}
    )
    assert status == 200
    assert document["predictions"] == expected.values.tolist()
    assert np.allclose(document["probabilities"], expected.probabilities)
    # A missing value leaves the fast lane; this model has no imputer, so it is refused.
    status, document = post_json(port, "/invocations", {"inputs": [[1.0, None, 2.0, 3.0]]})
    assert status == 400 and "contains NaN" in document["message"]


def test_concurrent_clients_each_get_their_own_rows(serve: Server, numeric_model: Path) -> None:
    loaded = load_model(numeric_model)
    slow = Model(SlowEstimator(loaded.estimator, 0.2), loaded.card, loaded.path)
    app, port = serve(slow)
    rows = np.random.default_rng(2).normal(size=(24, 4))
    expected = loaded.estimator.predict_proba(pd.DataFrame(rows, columns=COLUMNS))
    answers: dict[int, Any] = {}
    start = threading.Barrier(len(rows))

    def client(index: int) -> None:
        start.wait()
        document = {
            "dataframe_split": {"columns": COLUMNS, "data": [rows[index].tolist()]},
            "params": {"proba": True},
        }
        answers[index] = post_json(port, "/invocations", document)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(rows))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for index in range(len(rows)):
        status, document = answers[index]
        assert status == 200
        assert np.allclose(document["probabilities"], [expected[index]])
    assert app.stats.requests == len(rows)
    assert app.stats.batches < len(rows), "requests that arrived together were not batched"
    assert app.stats.mean_batch_rows > 1


def _error(body: bytes) -> dict[str, str]:
    document = json.loads(body)
    assert set(document) == {"error_code", "message"}, "the JSON error shape changed"
    return document  # type: ignore[no-any-return]


def test_the_json_error_shape_is_pinned(serve: Server, numeric_model: Path) -> None:
    _, port = serve(load_model(numeric_model))
    status, headers, body = call(port, "POST", "/invocations", b"{not json")
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert _error(body)["error_code"] == "BAD_REQUEST"
    assert _error(body)["message"].startswith("malformed JSON:")


def test_schema_errors_name_the_column_and_do_not_echo_the_payload(
    serve: Server, numeric_model: Path
) -> None:
    _, port = serve(load_model(numeric_model))
    data = [[1.0, 2.0, 3.0, 4.0], [1.0, "SECRET-4111", 3.0, 4.0]]
    status, _, body = call(
        port,
        "POST",
        "/invocations",
        json.dumps({"dataframe_split": {"columns": COLUMNS, "data": data}}).encode(),
    )
    assert status == 400
    assert _error(body)["message"] == "row 2, column 'b': value not a number"
    assert b"SECRET" not in body
    status, _, body = call(
        port, "POST", "/invocations", json.dumps({"inputs": {"a": [1.0]}}).encode()
    )
    assert status == 400
    assert "missing column 'b'" in _error(body)["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "code"),
    [
        ("GET", "/nowhere", None, None, 404, "ENDPOINT_NOT_FOUND"),
        ("GET", "/invocations", None, None, 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/ping", b"{}", "application/json", 405, "METHOD_NOT_ALLOWED"),
        ("DELETE", "/ping", None, None, 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/invocations", b"a=1", "application/x-www-form-urlencoded", 415, "BAD_REQUEST"),
        ("POST", "/invocations", b"{}", None, 415, "BAD_REQUEST"),
        ("POST", "/invocations", b'{"inputs": []}', "application/json", 400, "BAD_REQUEST"),
    ],
)
def test_error_statuses(
    serve: Server,
    numeric_model: Path,
    method: str,
    path: str,
    body: bytes | None,
    content_type: str | None,
    status: int,
    code: str,
) -> None:
    _, port = serve(load_model(numeric_model))
    got, headers, answer = call(port, method, path, body, content_type)
    assert got == status
    assert _error(answer)["error_code"] == code
    if status == 405:
        assert headers["allow"] in ("GET, HEAD", "POST")


def test_length_required_and_payload_too_large(serve: Server, numeric_model: Path) -> None:
    _, port = serve(load_model(numeric_model), max_body_bytes=100)
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    answer = raw_exchange(port, head + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 411 ")
    answer = raw_exchange(port, head + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 411 ")
    big = b"{" + b" " * 200 + b"}"
    status, headers, body = call(port, "POST", "/invocations", big)
    assert status == 413
    assert headers["connection"] == "close"
    assert "at most 100" in _error(body)["message"]


def test_a_request_http_cannot_parse_gets_the_json_error_and_a_closed_connection(
    serve: Server, numeric_model: Path
) -> None:
    _, port = serve(load_model(numeric_model))
    answer = raw_exchange(port, b'GET "/ping" "HTTP/1.1" extra\r\n\r\n')
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in head
    assert _error(body)["error_code"] == "BAD_REQUEST"
    answer = raw_exchange(port, b"GET /ping HTTP/1.1\r\nno colon here\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_not_ready_until_a_model_is_loaded(serve: Server, numeric_model: Path) -> None:
    app, port = serve(None)
    for path in ("/ping", "/health"):
        status, _, body = call(port, "GET", path)
        assert (status, _error(body)["error_code"]) == (503, "SERVICE_UNAVAILABLE")
    status, _ = post_json(port, "/invocations", {"inputs": [[1, 2, 3, 4]]})
    assert status == 503
    assert call(port, "GET", "/v2/health/live")[0] == 200
    assert call(port, "GET", "/v2/health/ready")[0] == 503
    app.model = load_model(numeric_model)
    assert call(port, "GET", "/ping")[:1] == (200,)
    assert call(port, "GET", "/v2/health/ready")[0] == 200


def test_a_slow_prediction_is_answered_504_and_a_broken_one_500(
    serve: Server, numeric_model: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    loaded = load_model(numeric_model)
    slow = Model(SlowEstimator(loaded.estimator, 1.0), loaded.card, loaded.path)
    _, port = serve(slow, request_timeout=0.2)
    results: list[int] = []
    first = threading.Thread(
        target=lambda: results.append(
            post_json(port, "/invocations", {"inputs": [[1, 2, 3, 4]]})[0]
        )
    )
    first.start()
    time.sleep(0.2)
    status, document = post_json(port, "/invocations", {"inputs": [[1, 2, 3, 4]]})
    first.join(10)
    assert (status, document["error_code"]) == (504, "DEADLINE_EXCEEDED")
    broken = Model(SlowEstimator(loaded.estimator, 0, fail=True), loaded.card, loaded.path)
    _, port = serve(broken)
    status, document = post_json(port, "/invocations", {"inputs": [[1, 2, 3, 4]]})
    assert status == 500
    assert "the model broke" in document["message"]
    assert "Traceback" not in document["message"]
    assert "the model broke" in capfd.readouterr().err


def test_a_stalled_client_does_not_block_others(serve: Server, numeric_model: Path) -> None:
    _, port = serve(load_model(numeric_model), read_timeout=0.5)
    stalled_body = socket.create_connection(("127.0.0.1", port), timeout=20)
    stalled_body.sendall(
        b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    stalled_line = socket.create_connection(("127.0.0.1", port), timeout=20)
    stalled_line.sendall(b"POST /invocat")
    status, document = post_json(port, "/invocations", {"inputs": [[1, 2, 3, 4]]})
    assert status == 200 and len(document["predictions"]) == 1
    answer = stalled_body.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"REQUEST_TIMEOUT" in answer
    assert stalled_line.recv(65536) == b""
    stalled_body.close()
    stalled_line.close()


def test_keep_alive_head_version_and_metrics(serve: Server, numeric_model: Path) -> None:
    model = load_model(numeric_model)
    _, port = serve(model)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    for _ in range(3):
        connection.request(
            "POST",
            "/invocations",
            b'{"inputs": [[1, 2, 3, 4]]}',
            {"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Connection") is None
        response.read()
    connection.request("HEAD", "/ping")
    response = connection.getresponse()
    assert response.status == 200 and response.read() == b""
    connection.close()
    status, _, body = call(port, "GET", "/version")
    assert status == 200 and re.fullmatch(rb"\d+\.\d+\.\d+.*", body)
    status, headers, body = call(port, "GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'infer_cli_requests_total{code="200"} 5' in text
    assert f'sha256="{model.card.sha256}"' in text
    assert "infer_cli_request_duration_seconds_bucket" in text
    assert "infer_cli_batch_rows_count 3" in text


def test_open_inference_protocol(serve: Server, numeric_model: Path) -> None:
    model = load_model(numeric_model)
    _, port = serve(model)
    assert post_json(port, "/v2/models/numeric/ready", {})[0] == 405
    status, _, body = call(port, "GET", "/v2/models/numeric")
    metadata = json.loads(body)
    assert status == 200 and [i["name"] for i in metadata["inputs"]] == COLUMNS
    assert call(port, "GET", "/v2/models/numeric/ready")[0] == 200
    rows = [[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -1.0, 3.0]]
    status, document = post_json(
        port,
        "/v2/models/numeric/infer",
        {
            "id": "42",
            "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": rows}],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        },
    )
    expected = model.predict(pd.DataFrame(rows, columns=COLUMNS), proba=True)
    assert status == 200 and document["id"] == "42"
    predict, proba = document["outputs"]
    assert predict["data"] == expected.values.tolist() and predict["datatype"] == "BYTES"
    assert proba["shape"] == [2, 2]
    assert np.allclose(proba["data"], expected.probabilities.reshape(-1))


def test_reload_swaps_a_good_model_and_keeps_the_old_one_when_broken(
    serve: Server,
    model_copy: Callable[[str], Path],
    trained_models: dict[str, Path],
    sample_data: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    path = model_copy("iris")
    app, port = serve(load_model(path))
    old_sha = app.model.card.sha256 if app.model else ""
    replacement = load_model(trained_models["iris"])
    replacement.card.training = {"retrained": True}
    save_model(replacement.estimator, replacement.card, path)
    assert reload_model(app, path)
    assert app.model is not None and app.model.card.training == {"retrained": True}
    new_sha = app.model.card.sha256
    assert new_sha != old_sha
    (path / "model.joblib").write_bytes(b"not a model")
    assert not reload_model(app, path)
    assert app.model.card.sha256 == new_sha
    assert "reload of" in capfd.readouterr().err
    rows = _iris_rows(sample_data, 2)
    status, document = post_json(
        port, "/invocations", {"dataframe_records": rows.to_dict(orient="records")}
    )
    assert status == 200 and len(document["predictions"]) == 2
    metrics = call(port, "GET", "/metrics")[2].decode()
    assert 'outcome="ok"} 1' in metrics and 'outcome="failed"} 1' in metrics


def test_reload_flag_picks_up_a_model_saved_over_the_served_one(
    model_copy: Callable[[str], Path], trained_models: dict[str, Path]
) -> None:
    from infer_cli.serve.process import Asked, ServeConfig, _watch

    path = model_copy("iris")
    app = App(ServeOptions(access_log=False))
    app.model = load_model(path)
    asked = Asked()
    watcher = threading.Thread(
        target=_watch, args=(app, ServeConfig(path, reload=True), asked), daemon=True
    )
    watcher.start()
    time.sleep(0.5)
    replacement = load_model(trained_models["iris"])
    replacement.card.training = {"retrained": True}
    new_sha = save_model(replacement.estimator, replacement.card, path).sha256
    deadline = time.monotonic() + 20
    while app.model.card.sha256 != new_sha and time.monotonic() < deadline:
        time.sleep(0.05)
    asked.stop = True
    watcher.join(10)
    assert app.model.card.sha256 == new_sha
    assert app.stats.reloads["ok"] == 1


SLOW_MODULE = '''
import time
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class SlowClassifier(ClassifierMixin, BaseEstimator):
    """Says "yes" to everything, after a pause long enough to be caught in flight."""

    def __init__(self, seconds=1.5):
        self.seconds = seconds
        self.feature_names_in_ = np.array(["a", "b", "c", "d"], dtype=object)
        self.n_features_in_ = 4
        self.classes_ = np.array(["no", "yes"])

    def predict(self, X):
        time.sleep(self.seconds)
        return np.array(["yes"] * len(X))
'''


_STARTED: list[Any] = []


@pytest.fixture(autouse=True)
def _no_server_left_behind() -> Iterator[None]:
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _start_serving(*args: str | Path, env: dict[str, str] | None = None) -> tuple[Any, int]:
    executable = Path(sys.executable).with_name("infer-cli")
    process = subprocess.Popen(
        [str(executable), "serve", "-p", "0", "--no-access-log", *map(str, args)],
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    _STARTED.append(process)
    assert process.stderr is not None
    seen = []
    for raw in process.stderr:
        line = raw.decode()
        seen.append(line)
        found = re.search(r"http://127\.0\.0\.1:(\d+)/invocations", line)
        if found:
            return process, int(found.group(1))
    process.kill()
    raise AssertionError(f"the server did not start: {''.join(seen)}")


def _finish(process: Any) -> tuple[int, str]:
    remaining = process.stderr.read().decode()
    return process.wait(30), remaining


def test_sigterm_drains_an_in_flight_request(tmp_path: Path) -> None:
    import joblib

    (tmp_path / "slowmodel.py").write_text(SLOW_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        import slowmodel

        joblib.dump(slowmodel.SlowClassifier(), tmp_path / "slow.joblib")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("slowmodel", None)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    process, port = _start_serving("-m", tmp_path / "slow.joblib", env=env)
    answers: list[tuple[int, Any]] = []
    client = threading.Thread(
        target=lambda: answers.append(post_json(port, "/invocations", {"inputs": [[1, 2, 3, 4]]}))
    )
    client.start()
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    client.join(30)
    code, stderr = _finish(process)
    assert answers == [(200, {"predictions": ["yes"]})]
    assert code == 0
    assert "Server stopped" in stderr
    assert re.search(r"requests\s+1\b", stderr)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_workers_share_the_socket_and_sighup_reloads(
    model_copy: Callable[[str], Path],
    trained_models: dict[str, Path],
    sample_data: Path,
    tmp_path: Path,
) -> None:
    from infer_cli.tables.log_files import read_log

    path = model_copy("iris")
    log = tmp_path / "log"
    process, port = _start_serving("-m", path, "--workers", "2", "--log-predictions", log)
    try:
        rows = _iris_rows(sample_data, 3).to_dict(orient="records")
        answered = {}
        for _ in range(6):
            status, headers, body = call(
                port, "POST", "/invocations", json.dumps({"dataframe_records": rows}).encode()
            )
            document = json.loads(body)
            assert status == 200 and len(document["predictions"]) == 3
            answered[headers["x-request-id"]] = document["predictions"]
        replacement = load_model(trained_models["iris"])
        replacement.card.training = {"retrained": True}
        new_sha = save_model(replacement.estimator, replacement.card, path).sha256
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        reloaded = 0
        while reloaded < 4 and time.monotonic() < deadline:
            metrics = call(port, "GET", "/metrics")[2].decode()
            reloaded = reloaded + 1 if new_sha in metrics else 0
            time.sleep(0.05)
        assert reloaded == 4, "not every worker serves the new model"
    finally:
        process.send_signal(signal.SIGTERM)
    code, stderr = _finish(process)
    assert code == 0
    served = re.search(r"requests\s+([\d,]+)", stderr)
    assert served and int(served.group(1).replace(",", "")) >= 6, stderr
    assert stderr.count("reloaded") == 2, "each worker reloads once"
    # Each worker wrote its own files, named by its pid, and made them whole as it stopped.
    assert re.search(r"prediction log\s+18 rows in \d+ files, 0 dropped", stderr), stderr
    table, _ = read_log(log)
    logged: dict[str, list[str]] = {}
    for row in table.sort_by([("request_id", "ascending"), ("row", "ascending")]).to_pylist():
        logged.setdefault(row["request_id"], []).append(row["prediction"])
    assert logged == answered
    pids = {name.name.split("-")[2] for name in log.iterdir()}
    assert str(process.pid) not in pids and not any(p.name.startswith(".") for p in log.iterdir())


def test_sigterm_during_worker_start_stops_every_worker(numeric_model: Path) -> None:
    # The banner is printed before the workers are forked: a SIGTERM sent at once lands
    # while they start, and must still reach each of them.
    process, _ = _start_serving("-m", numeric_model, "--workers", "3")
    process.send_signal(signal.SIGTERM)
    code, stderr = _finish(process)
    assert code == 0, stderr
    assert "Server stopped" in stderr


def test_serve_exit_codes_for_a_busy_port_and_a_missing_model(
    numeric_model: Path, tmp_path: Path
) -> None:
    from conftest import run_infer_cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = run_infer_cli("serve", "-m", numeric_model, "-p", port)
    assert busy.returncode == 2
    assert busy.stderr.decode().strip() == (
        f"infer-cli: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    missing = run_infer_cli("serve", "-m", tmp_path / "nothing", "-p", "0")
    assert missing.returncode == 4
    assert "no model at" in missing.stderr.decode()
    assert "Traceback" not in missing.stderr.decode()


def test_requests_scored_together_are_each_answered_as_alone_and_a_bad_one_fails_alone(
    trained_models: dict[str, Path], sample_data: Path
) -> None:
    """A batch's requests are validated together when they can be; one holding a list in a
    cell, a word in a number column or a gap where others have none changes nothing for the
    others, and gets the same 400 it gets alone."""
    from infer_cli.serve.messages import Headers, Request

    app = App()
    app.model = load_model(trained_models["churn"])
    rows = json.loads(pd.read_csv(sample_data / "churn_new.csv").head(5).to_json(orient="records"))
    bad = {
        1: {**rows[1], "contract": ["a", "list"]},
        3: {**rows[3], "tenure_months": "twelve"},
    }
    documents = [{"dataframe_records": [bad.get(index, row)]} for index, row in enumerate(rows)]
    documents.append({"dataframe_records": [{**rows[0], "monthly_charges": None}]})

    def job(document: dict[str, Any]) -> Any:
        body = json.dumps(document).encode()
        headers = Headers({"Content-Type": "application/json"})
        return app.route(Request("POST", "/invocations", headers, body))

    together = app.answer([job(document) for document in documents])
    alone = [app.answer([job(document)])[0] for document in documents]

    def refused(requests: Any) -> None:
        raise OverflowError("a value no array takes")

    app.model.prepare_together = refused  # type: ignore[method-assign]
    # Casting them together failed: each is still answered, alone.
    fallen_back = app.answer([job(document) for document in documents])
    for index, (joint, single, fallback) in enumerate(
        zip(together, alone, fallen_back, strict=True)
    ):
        assert joint is not None and single is not None and fallback is not None
        assert (joint.status, joint.body) == (single.status, single.body), index
        assert (fallback.status, fallback.body) == (single.status, single.body), index
        assert joint.status == (400 if index in bad else 200), joint.body
