"""`bench`: the figures it prints are the ones it measured, and the load generator is honest."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from infer_cli.loadgen import Target, run_load

from conftest import make_server


class _CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    served = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).served += 1
            number = type(self).served
        status = 500 if number % 10 == 0 else 200
        body = b'{"predictions": [0]}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def counting_server() -> Iterator[tuple[int, type[_CountingHandler]]]:
    handler = type("Handler", (_CountingHandler,), {"served": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def test_load_generator_counts_every_request_and_every_error(
    counting_server: tuple[int, type[_CountingHandler]],
) -> None:
    port, handler = counting_server
    target = Target.parse(f"http://127.0.0.1:{port}", "/invocations")
    result = run_load(target, b"{}", "application/json", concurrency=4, duration=0.3)
    assert result.requests == handler.served > 0
    assert result.errors == handler.served // 10
    assert result.first_error == "HTTP 500"
    assert len(result.latencies_ms) == result.requests - result.errors


def test_load_generator_reports_a_server_that_is_not_there() -> None:
    target = Target.parse("127.0.0.1:9", "/invocations")
    result = run_load(target, b"{}", "application/json", concurrency=1, duration=0.1)
    assert result.errors >= 1
    assert result.latencies_ms == []
    assert result.first_error and "ConnectionRefusedError" in result.first_error


def test_url_path_defaults_to_invocations() -> None:
    assert Target.parse("http://localhost:5000", "/invocations").path == "/invocations"
    assert Target.parse("http://h:1/v2/models/m/infer", "/invocations").port == 1


def test_bench_json_reports_the_batch_sizes_it_measured(
    cli: Any, trained_models: dict[str, Path]
) -> None:
    result = cli(
        "bench", "-m", trained_models["churn"], "--max-batch", "100", "--seconds", "0.2", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [p["batch_size"] for p in report["batches"]] == [1, 10, 100]
    for point in report["batches"]:
        assert point["calls"] >= 1
        # Throughput and time per call are two views of one measurement.
        implied = point["rows_per_second"] * point["ms_per_call"] / 1000
        assert implied == pytest.approx(point["batch_size"], rel=1e-6)
    latency = report["single_row"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert report["rows_source"] == "the model's example rows"
    assert report["server"] == []


def test_bench_table_and_chart_show_each_batch_size(
    cli: Any, trained_models: dict[str, Path], sample_data: Path
) -> None:
    result = cli(
        "bench", "-m", trained_models["iris"], "-i", sample_data / "iris_new.csv",
        "--max-batch", "1000", "--seconds", "0.2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Time per call against batch size" in result.stderr
    for size in ("1,000", "100", "10"):
        assert size in result.stderr
    assert "one row" in result.stderr


def test_bench_with_a_bad_url_is_a_usage_error(cli: Any, trained_models: dict[str, Path]) -> None:
    result = cli("bench", "-m", trained_models["iris"], "--url", "ftp://x", "--seconds", "0.1")
    assert result.exit_code == 2
    assert "--url must be an http:// address" in result.stderr


def test_bench_load_tests_a_real_server_and_counts_its_requests(
    cli: Any, trained_models: dict[str, Path]
) -> None:
    from infer_cli.core import load_model
    from infer_cli.serve.routes import App, ServeOptions

    app = App(ServeOptions(access_log=False))
    app.model = load_model(trained_models["churn"])
    server = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = cli(
            "bench", "-m", trained_models["churn"], "--max-batch", "10", "--seconds", "0.3",
            "--url", f"http://127.0.0.1:{server.server_address[1]}", "--concurrency", "1,4",
            "--json",
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [point["concurrency"] for point in report["server"]] == [1, 4]
    for point in report["server"]:
        assert point["errors"] == 0, point["first_error"]
        assert point["requests"] > 0
        assert point["requests_per_second"] > 0
        assert 0 < point["latency"]["p50"] <= point["latency"]["p99"]
    served = sum(point["requests"] for point in report["server"])
    # Requests cut off by the end of a measurement are served but not counted by bench.
    assert app.stats.requests >= served
