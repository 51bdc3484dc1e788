"""`/metrics` reports the whole server: counts shared by the worker processes, summed
whichever worker answers, in all and per model; and the counts' own arithmetic in-process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infer_cli.core import load_model
from infer_cli.serve.drift import DriftMonitors
from infer_cli.serve.metrics import prometheus
from infer_cli.serve.served import ServedModels
from infer_cli.serve.stats import ServeStats

from conftest import Server, call

ROW = {"inputs": [[0.5, -1.0, 2.0, 0.0]]}
IRIS = {"dataframe_records": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                               "petal_width": 0.2}]}  # fmt: skip


def _series(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text, by its name and labels."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _post(port: int, path: str, document: Any) -> int:
    return call(port, "POST", path, json.dumps(document).encode())[0]


@pytest.fixture
def two_workers(numeric_model: Path, trained_models: dict[str, Path]) -> Iterator[tuple[Any, int]]:
    executable = Path(sys.executable).with_name("infer-cli")
    process = subprocess.Popen(
        [str(executable), "serve", "-p", "0", "--no-access-log", "--workers", "2",
         "-m", str(numeric_model), "-m", f"flowers={trained_models['iris']}"],
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert process.stderr is not None
    seen = []
    port = 0
    for raw in process.stderr:
        seen.append(raw.decode())
        if found := re.search(r"http://127\.0\.0\.1:(\d+)/invocations", seen[-1]):
            port = int(found.group(1))
            break
    try:
        assert port, "".join(seen)
        yield process, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_metrics_add_up_over_two_workers_whichever_answers(
    two_workers: tuple[Any, int],
) -> None:
    process, port = two_workers
    expected = {"numeric": {200: 0, 400: 0}, "flowers": {200: 0}}
    unknown = 0
    by_worker: dict[str, float] = {}
    # Each request on a connection of its own, until both workers have answered some.
    for attempt in range(200):
        if attempt % 4 == 0:
            assert _post(port, "/invocations", ROW) == 200
            expected["numeric"][200] += 1
        elif attempt % 4 == 1:
            assert _post(port, "/models/flowers/invocations", IRIS) == 200
            expected["flowers"][200] += 1
        elif attempt % 4 == 2:
            assert _post(port, "/models/numeric/invocations", {"inputs": [[1.0]]}) == 400
            expected["numeric"][400] += 1
        else:
            assert _post(port, "/models/churn/invocations", ROW) == 404
            unknown += 1
        if attempt % 4 == 3:
            samples = _series(call(port, "GET", "/metrics")[2].decode())
            by_worker = {k: v for k, v in samples.items() if k.startswith("infer_cli_worker_")}
            if len(by_worker) == 2 and all(by_worker.values()):
                break
    assert len(by_worker) == 2 and all(by_worker.values()), f"one worker answered all: {by_worker}"
    scored = sum(sum(codes.values()) for codes in expected.values())
    gets = (attempt + 1) // 4  # the /metrics requests so far, each counted once answered
    for look in range(6):  # whichever worker answers, on a connection of its own
        samples = _series(call(port, "GET", "/metrics")[2].decode())
        for name, codes in expected.items():
            for code, count in codes.items():
                assert (
                    samples[f'infer_cli_model_requests_total{{model="{name}",code="{code}"}}']
                    == count
                )
            answered = sum(codes.values())
            assert (
                samples[f'infer_cli_model_request_duration_seconds_count{{model="{name}"}}']
                == answered
            )
        # Rows per model call: a call per request scored, a row each (requests may share one).
        assert (
            samples['infer_cli_model_batch_rows_sum{model="flowers"}'] == expected["flowers"][200]
        )
        assert samples['infer_cli_requests_total{code="404"}'] == unknown
        assert (
            samples['infer_cli_requests_total{code="200"}']
            == scored - expected["numeric"][400] + gets + look
        )
        total = sum(v for k, v in samples.items() if k.startswith("infer_cli_requests_total"))
        workers = sum(
            v for k, v in samples.items() if k.startswith("infer_cli_worker_requests_total")
        )
        assert total == workers == scored + unknown + gets + look
        assert samples["infer_cli_request_duration_seconds_count"] == total
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    summary = process.stderr.read().decode()
    served = re.search(r"requests\s+([\d,]+)", summary)
    assert served and int(served.group(1).replace(",", "")) == total + 1, summary


def test_each_model_is_counted_apart_and_described_by_its_hash_and_version(
    serve: Server, numeric_model: Path, trained_models: dict[str, Path]
) -> None:
    numeric, flowers = load_model(numeric_model), load_model(trained_models["iris"])
    app, port = serve(None)
    app.models = {"numeric": numeric, "flowers": flowers}
    for _ in range(3):
        assert _post(port, "/invocations", ROW) == 200
    assert _post(port, "/models/flowers/invocations", IRIS) == 200
    assert _post(port, "/models/flowers/invocations", {"inputs": [[1]]}) == 400
    app.stats.record_reload("failed", "flowers")
    text = call(port, "GET", "/metrics")[2].decode()
    samples = _series(text)
    assert samples['infer_cli_model_requests_total{model="numeric",code="200"}'] == 3
    assert samples['infer_cli_model_requests_total{model="flowers",code="200"}'] == 1
    assert samples['infer_cli_model_requests_total{model="flowers",code="400"}'] == 1
    assert samples['infer_cli_model_batch_rows_count{model="numeric"}'] == 3
    assert samples['infer_cli_model_reload_attempts_total{model="flowers",outcome="failed"}'] == 1
    assert samples['infer_cli_model_reload_attempts_total{model="numeric",outcome="failed"}'] == 0
    assert samples['infer_cli_model_reloads_total{outcome="failed"}'] == 1
    for name, model, version in (("numeric", numeric, numeric.card.sha256[:12]),
                                 ("flowers", flowers, flowers.card.sha256[:12])):  # fmt: skip
        info = (
            f'infer_cli_model_info{{model="{name}",sha256="{model.card.sha256}",'
            f'path="{model.path}",version="{version}"}}'
        )
        assert samples[info] == 1
    # A family's samples stay together, its HELP and TYPE once, as Prometheus requires.
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names))


def test_shared_counts_are_summed_over_every_workers_block() -> None:
    stats = ServeStats(["a"], workers=3)
    for slot, requests in enumerate((2, 0, 5)):
        stats.use_slot(slot)
        for _ in range(requests):
            stats.record(200, 0.001, "a")
            stats.record_batch(3, "a")
    stats.use_slot(1)
    stats.record(404, 0.002)
    stats.record_reload("ok", "a")
    assert stats.statuses == {200: 7, 404: 1}
    assert stats.requests_by_worker() == [2, 1, 5]
    assert stats.totals("a").statuses == {200: 7}
    assert (stats.batches, stats.mean_batch_rows) == (7, 3.0)
    assert stats.reloads == {"ok": 1, "failed": 0}
    assert 0.0009 < stats.percentile(0.5) < 0.0011
    text = prometheus(stats, ServedModels(), DriftMonitors())
    assert 'infer_cli_worker_requests_total{worker="2"} 5' in text
