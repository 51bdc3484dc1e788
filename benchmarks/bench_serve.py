"""Real-time serving: `infer-cli serve` against `mlflow models serve`, same model, same load.

Builds a scaler + logistic regression on four float columns (and, with --models iris, the
sample iris model), saves it for infer-cli and, through the MLflow virtual environment in a
subprocess, with `mlflow.sklearn.save_model` (infer-cli itself never imports MLflow). Then
for each server in turn, several rounds alternating: start it, time how long until `/ping`
answers 200, and drive single-row JSON `dataframe_split` requests with wrk at 1, 16, 64
and 256 keep-alive connections. Prints medians over the rounds and ratios to MLflow.

    python benchmarks/bench_serve.py [--seconds 5] [--rounds 3] [--models numeric,iris]
        [--mlflow-python /work/bench-venv/bin/python] [--json results.json]

wrk and the servers share the machine's cores: on a 2-core machine the load generator
takes a part of the CPU the servers would otherwise have, for every server alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LEVELS = (1, 16, 64, 256)
COLUMNS = ["a", "b", "c", "d"]
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "p50": %%d, "p95": %%d, "p99": %%d, "max": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""
SAVE_FOR_MLFLOW = """
import sys, joblib, pandas as pd, mlflow.sklearn
from mlflow.models import infer_signature
pipeline = joblib.load(sys.argv[1])
example = pd.read_json(sys.argv[2], orient="split")
signature = infer_signature(example, pipeline.predict(example))
mlflow.sklearn.save_model(
    pipeline, sys.argv[3], signature=signature, serialization_format="cloudpickle"
)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="Load per level and round.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds, servers alternating.")
    parser.add_argument("--models", default="numeric,iris", help="numeric and/or iris.")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="Connections.")
    parser.add_argument("--mlflow-python", default="/work/bench-venv/bin/python")
    parser.add_argument("--json", help="Also write every measurement to this file.")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench_serve: wrk is not installed (apt-get install wrk)")
    levels = tuple(int(level) for level in args.levels.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    results: dict[str, Any] = {"machine": _machine(), "models": {}}
    try:
        for name in args.models.split(","):
            body, infer_dir, mlflow_dir = _build_model(name, work, args.mlflow_python)
            servers = {
                "mlflow": _mlflow_command(args.mlflow_python, mlflow_dir),
                "infer-cli": _infer_command(infer_dir, []),
                "infer-cli --workers 2": _infer_command(infer_dir, ["--workers", "2"]),
            }
            runs = _measure(servers, body, levels, args.seconds, args.rounds, work)
            results["models"][name] = runs
            _report(name, runs, levels)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_after"] = os.getloadavg()
    print(f"\nload average before {results['machine']['load_before']}, after "
          f"{tuple(round(x, 2) for x in results['machine']['load_after'])}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_before": tuple(round(x, 2) for x in os.getloadavg()),
        "python": sys.version.split()[0],
    }


def _build_model(name: str, work: Path, mlflow_python: str) -> tuple[str, Path, Path]:
    """Fit (or train) the model, save it both ways, and return one request body for it."""
    import joblib
    import numpy as np
    import pandas as pd

    from infer_cli.core.card import ModelCard
    from infer_cli.core.signature import Column, Signature
    from infer_cli.core.store import save_model

    if name == "numeric":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        rng = np.random.default_rng(0)
        x = pd.DataFrame(rng.normal(size=(2000, 4)), columns=COLUMNS)
        y = np.where(x["a"] + 0.5 * x["b"] - x["c"] > 0, "yes", "no")
        estimator = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
        estimator.fit(x, y)
        card = ModelCard(
            task="classification",
            target="label",
            classes=["no", "yes"],
            signature=Signature(tuple(Column(column, "float") for column in COLUMNS)),
        )
        row = x.head(1)
    elif name == "iris":
        from infer_cli.training import TrainOptions, train

        result = train(pd.read_csv(ROOT / "sample_data/iris.csv"), TrainOptions(target="species"))
        estimator, card = result.estimator, result.card
        row = pd.read_csv(ROOT / "sample_data/iris_new.csv").head(1)
    else:
        sys.exit(f"bench_serve: unknown model '{name}' (numeric or iris)")
    infer_dir = work / f"{name}-infer-cli"
    save_model(estimator, card, infer_dir)
    joblib.dump(estimator, work / f"{name}.joblib")
    example = work / f"{name}-example.json"
    row.to_json(example, orient="split", index=False)
    mlflow_dir = work / f"{name}-mlflow"
    subprocess.run(
        [mlflow_python, "-c", SAVE_FOR_MLFLOW, work / f"{name}.joblib", example, mlflow_dir],
        check=True,
        capture_output=True,
    )
    body = json.dumps({"dataframe_split": json.loads(row.to_json(orient="split", index=False))})
    return body, infer_dir, mlflow_dir


def _infer_command(model: Path, extra: list[str]) -> list[str]:
    executable = Path(sys.executable).with_name("infer-cli")
    return [str(executable), "serve", "-m", str(model), "-p", "{port}", *extra]


def _mlflow_command(mlflow_python: str, model: Path) -> list[str]:
    mlflow = str(Path(mlflow_python).with_name("mlflow"))
    return [mlflow, "models", "serve", "-m", str(model), "--env-manager", "local", "-p", "{port}"]


def _measure(
    servers: dict[str, list[str]],
    body: str,
    levels: tuple[int, ...],
    seconds: int,
    rounds: int,
    work: Path,
) -> dict[str, list[dict[str, Any]]]:
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT % {"body": body})
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    for round_number in range(rounds):
        for name, command in servers.items():
            print(f"round {round_number + 1}/{rounds}: {name}", file=sys.stderr, flush=True)
            runs[name].append(_run_server(command, script, levels, seconds, work))
    return runs


def _run_server(
    command: list[str], script: Path, levels: tuple[int, ...], seconds: int, work: Path
) -> dict[str, Any]:
    port = _free_port()
    began = time.perf_counter()
    with running(command, port, work) as process:
        ready = _wait_ready(port, process, began)
        url = f"http://127.0.0.1:{port}/invocations"
        _wrk(script, url, 16, 1)  # warm-up
        run = {"ready_seconds": ready, "load": os.getloadavg()[0], "levels": {}}
        for level in levels:
            run["levels"][str(level)] = _wrk(script, url, level, seconds)
        return run


@contextmanager
def running(command: list[str], port: int, work: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server started from `command` ({port} filled in), logging to work/server.log, in a
    session of its own so that stopping it stops its workers too."""
    env = {**os.environ, "PATH": f"{Path(command[0]).parent}:{os.environ.get('PATH', '')}"}
    with (work / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [part.replace("{port}", str(port)) for part in command],
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, process: subprocess.Popen[bytes], began: float) -> float:
    deadline = began + 120
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as answer:
                if answer.status == 200:
                    return time.perf_counter() - began
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError("the server was not ready within 120 s")


def _wrk(script: Path, url: str, connections: int, seconds: int) -> dict[str, Any]:
    threads = min(2, connections)
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["failed"] = sum(result[key] for key in ("connect", "read", "write", "status"))
    return result


def _report(name: str, runs: dict[str, list[dict[str, Any]]], levels: tuple[int, ...]) -> None:
    """A Markdown table of medians over the rounds, with ratios to MLflow."""
    rounds = len(runs["mlflow"])
    print(f"\n### {name} model: single-row JSON dataframe_split, medians of {rounds} rounds\n")
    print("| server | connections | p50 ms | p95 ms | p99 ms | requests/s | failed | timed out |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    medians: dict[tuple[str, int], dict[str, float]] = {}
    for server, server_runs in runs.items():
        for level in levels:
            points = [run["levels"][str(level)] for run in server_runs]
            median = {
                key: statistics.median(point[key] for point in points)
                for key in ("p50", "p95", "p99", "rps")
            }
            median["failed"] = sum(point["failed"] for point in points)
            median["timeout"] = sum(point["timeout"] for point in points)
            medians[(server, level)] = median
            print(
                f"| {server} | {level} | {median['p50'] / 1000:.2f} | {median['p95'] / 1000:.2f} "
                f"| {median['p99'] / 1000:.2f} | {median['rps']:,.0f} | {median['failed']:.0f} "
                f"| {median['timeout']:.0f} |"
            )
    print("\n| server | ready in (s) | p50 at 1 conn vs mlflow | req/s at 16 conns vs mlflow |")
    print("| --- | ---: | ---: | ---: |")
    base_p50 = medians[("mlflow", 1)]["p50"] if 1 in levels else float("nan")
    base_rps = medians[("mlflow", 16)]["rps"] if 16 in levels else float("nan")
    for server, server_runs in runs.items():
        ready = statistics.median(run["ready_seconds"] for run in server_runs)
        p50 = medians[(server, 1)]["p50"] / base_p50 if 1 in levels else float("nan")
        rps = medians[(server, 16)]["rps"] / base_rps if 16 in levels else float("nan")
        print(f"| {server} | {ready:.2f} | {p50:.3f} x | {rps:.1f} x |")
    loads = [run["load"] for server_runs in runs.values() for run in server_runs]
    print(f"\n(1-minute load average during the rounds: {min(loads):.2f} to {max(loads):.2f})")


if __name__ == "__main__":
    main()
