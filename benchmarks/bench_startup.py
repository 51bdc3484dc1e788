"""Start-up: `infer-cli serve` against `mlflow models serve`, same model.

Times, from the command to `GET /ping` answering 200, how long each server takes to be
ready, then the latency of the first and of the second single-row prediction (a start
that defers work to the first request shows there). Rounds alternate the servers; before
each start the script waits for the CPU to be idle. Prints medians and ratios to MLflow.
The models are bench_serve.py's: a scaler + logistic regression on four float columns,
and the sample iris model (a ColumnTransformer pipeline).

    python benchmarks/bench_startup.py [--rounds 7] [--models numeric,iris] [--poll-ms 20]
        [--mlflow-python /work/bench-venv/bin/python] [--json results.json]

While it loads, infer-cli answers every /ping with 503 and that work slows the load
itself (polling every 5 ms cost it about 0.1 s here), where MLflow has no socket until it
is ready: both are polled every `--poll-ms`, which bounds the error of each figure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_serve import _build_model, _free_port, _infer_command, _mlflow_command, running

IDLE_SHARE = 0.15
IDLE_PATIENCE_SECONDS = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="Starts per server and model.")
    parser.add_argument("--models", default="numeric,iris", help="numeric and/or iris.")
    parser.add_argument("--poll-ms", type=float, default=20.0, help="Interval of /ping polls.")
    parser.add_argument("--mlflow-python", default="/work/bench-venv/bin/python")
    parser.add_argument("--json", help="Also write every measurement to this file.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    results: dict[str, Any] = {"cpus": os.cpu_count(), "models": {}}
    try:
        for name in args.models.split(","):
            body, infer_dir, mlflow_dir = _build_model(name, work, args.mlflow_python)
            servers = {
                "infer-cli": _infer_command(infer_dir, ["--no-access-log"]),
                "mlflow": _mlflow_command(args.mlflow_python, mlflow_dir),
            }
            runs: dict[str, list[dict[str, float]]] = {server: [] for server in servers}
            for round_number in range(args.rounds):
                for server, command in servers.items():
                    print(f"{name} {round_number + 1}/{args.rounds}: {server}", file=sys.stderr)
                    _wait_idle()
                    runs[server].append(_start(command, body, args.poll_ms / 1000, work))
            results["models"][name] = runs
            _report(name, runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def _start(command: list[str], body: str, poll: float, work: Path) -> dict[str, float]:
    port = _free_port()
    began = time.perf_counter()
    with running(command, port, work) as process:
        while _status(port, "GET", "/ping") != 200:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with status {process.returncode}")
            if time.perf_counter() - began > 120:
                raise RuntimeError("the server was not ready within 120 s")
            time.sleep(poll)
        ready = time.perf_counter() - began
        latencies = []
        for _ in range(2):
            sent = time.perf_counter()
            status = _status(port, "POST", "/invocations", body)
            latencies.append(time.perf_counter() - sent)
            if status != 200:
                raise RuntimeError(f"a prediction was answered {status}")
        return {
            "ready_s": ready,
            "first_ms": latencies[0] * 1000,
            "second_ms": latencies[1] * 1000,
            "load": os.getloadavg()[0],
        }


def _status(port: int, method: str, path: str, body: str | None = None) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read()
        return answer.status
    except OSError:
        return None
    finally:
        connection.close()


def _wait_idle() -> None:
    """Wait, for a while at most, until the CPU was mostly idle for half a second."""
    if not Path("/proc/stat").exists():
        return
    deadline = time.monotonic() + IDLE_PATIENCE_SECONDS
    while time.monotonic() < deadline and _busy_share(0.5) > IDLE_SHARE:
        pass


def _busy_share(seconds: float) -> float:
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # idle and iowait

    total, idle = sample()
    time.sleep(seconds)
    total_after, idle_after = sample()
    return 1 - (idle_after - idle) / max(1, total_after - total)


def _report(name: str, runs: dict[str, list[dict[str, float]]]) -> None:
    medians = {
        server: {key: statistics.median(run[key] for run in measured) for key in measured[0]}
        for server, measured in runs.items()
    }
    rounds = len(runs["mlflow"])
    print(f"\n## {name}: medians of {rounds} starts (load average {os.getloadavg()[0]:.2f})\n")
    print("| server | ready in (s) | vs mlflow | 1st prediction (ms) | 2nd prediction (ms) |")
    print("|---|---|---|---|---|")
    for server, figures in medians.items():
        ratio = figures["ready_s"] / medians["mlflow"]["ready_s"]
        print(
            f"| {server} | {figures['ready_s']:.2f} | {ratio:.2f}x | "
            f"{figures['first_ms']:.1f} | {figures['second_ms']:.2f} |"
        )
    print(
        "\nready in, each start: "
        + "; ".join(
            f"{server} " + " ".join(f"{run['ready_s']:.2f}" for run in measured)
            for server, measured in runs.items()
        )
    )


if __name__ == "__main__":
    main()
