"""Real-time serving: `infer-cli serve` against `mlflow models serve`, same model, same load.

For each model (a scaler + logistic regression on four floats, and the pipelines `infer-cli
train` makes from sample_data/: iris, churn with logistic/forest/gbm, reviews, housing), saves
it three ways: an infer-cli directory, a bare `.joblib` file and, through the MLflow virtual
environment in a subprocess, an MLflow directory (`mlflow.sklearn.save_model`; infer-cli
itself never imports MLflow). Then for each server in turn, several rounds in an order that
rotates from round to round: start it, time how long until `/ping` answers 200, and drive
single-row JSON `dataframe_split` requests with wrk over keep-alive connections. Servers:
`mlflow models serve` on the MLflow directory, and `infer-cli serve` on each of the three.
Prints medians over the rounds, ratios to MLflow and, for a bare file and an MLflow
directory served by infer-cli, ratios to infer-cli's own directory; then one summary table.

    python benchmarks/bench_serve.py [--seconds 4] [--rounds 3] [--levels 1,16]
        [--models numeric,iris,churn-auto,churn-forest,churn-gbm,reviews-auto,housing-auto]
        [--workers2] [--mlflow-python /work/bench-venv/bin/python] [--json results.json]

A family is DATA-ALGORITHM, DATA one of iris, churn, reviews, housing and ALGORITHM one of
`infer-cli train --algorithm`'s. wrk and the servers share the machine's cores: on a 2-core
machine the load generator takes a part of the CPU the servers would otherwise have, for
every server alike.
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
LEVELS = (1, 16)
MODELS = "numeric,iris,churn-auto,churn-forest,churn-gbm,reviews-auto,housing-auto"
TARGETS = {"iris": "species", "churn": "churned", "reviews": "sentiment", "housing": "price"}
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
example = pd.read_json(sys.argv[2], orient="split", dtype=False)
signature = infer_signature(example)
mlflow.sklearn.save_model(
    pipeline, sys.argv[3], signature=signature, serialization_format="cloudpickle"
)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4, help="Load per level and round.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds, servers alternating.")
    parser.add_argument("--models", default=MODELS, help="numeric, iris, DATA-ALGORITHM.")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="Connections.")
    parser.add_argument("--workers2", action="store_true", help="Also infer-cli --workers 2.")
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
            body, saved = _build_model(name, work, args.mlflow_python)
            servers = {
                "mlflow": _mlflow_command(args.mlflow_python, saved["mlflow"]),
                "infer-cli": _infer_command(saved["directory"], []),
                "infer-cli, bare .joblib": _infer_command(saved["bare"], []),
                "infer-cli, MLflow dir": _infer_command(saved["mlflow"], []),
            }
            if args.workers2:
                servers["infer-cli --workers 2"] = _infer_command(
                    saved["directory"], ["--workers", "2"]
                )
            runs = _measure(servers, body, levels, args.seconds, args.rounds, work)
            results["models"][name] = runs
            _report(name, runs, levels)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_after"] = os.getloadavg()
    _summary(results["models"], levels)
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


def _build_model(name: str, work: Path, mlflow_python: str) -> tuple[str, dict[str, Path]]:
    """Fit (or train) the model, save it three ways, and return one request body for it."""
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
        rows = x.head(200)
    else:
        from infer_cli.training import TrainOptions, train

        data, _, algorithm = name.partition("-")
        if data not in TARGETS:
            sys.exit(f"bench_serve: unknown model '{name}' (numeric, or DATA-ALGORITHM)")
        options = TrainOptions(target=TARGETS[data], algorithm=algorithm or "auto")
        result = train(pd.read_csv(ROOT / f"sample_data/{data}.csv"), options)
        estimator, card = result.estimator, result.card
        rows = pd.read_csv(ROOT / f"sample_data/{data}_new.csv")
    saved = {
        "directory": work / f"{name}-infer-cli",
        "bare": work / f"{name}.joblib",
        "mlflow": work / f"{name}-mlflow",
    }
    save_model(estimator, card, saved["directory"])
    joblib.dump(estimator, saved["bare"])
    example = work / f"{name}-example.json"
    rows.to_json(example, orient="split", index=False)
    subprocess.run(
        [mlflow_python, "-c", SAVE_FOR_MLFLOW, saved["bare"], example, saved["mlflow"]],
        check=True,
        capture_output=True,
    )
    row = rows.head(1)
    body = json.dumps({"dataframe_split": json.loads(row.to_json(orient="split", index=False))})
    return body, saved


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
    names = list(servers)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            print(f"round {round_number + 1}/{rounds}: {name}", file=sys.stderr, flush=True)
            runs[name].append(_run_server(servers[name], script, levels, seconds, work))
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


_MEDIANS: dict[str, dict[tuple[str, int], dict[str, float]]] = {}


def _ratio(
    medians: dict[tuple[str, int], dict[str, float]], server: str, base: str, level: int, key: str
) -> float:
    if (server, level) not in medians or (base, level) not in medians:
        return float("nan")
    return medians[(server, level)][key] / medians[(base, level)][key]


def _summary(models: dict[str, Any], levels: tuple[int, ...]) -> None:
    """One line per model: infer-cli's figures, a bare file's and an MLflow directory's as
    ratios to infer-cli's own directory, and MLflow's server with infer-cli's ratio to it."""
    if 1 not in levels or 16 not in levels:
        return
    print("\n### Summary: one worker, single-row JSON requests, medians\n")
    print(
        "| model | infer-cli p50 at 1 conn | req/s at 16 | p99 at 16 "
        "| bare .joblib vs directory (p50, req/s) | MLflow dir vs directory (p50, req/s) "
        "| mlflow serve p50 / req/s | infer-cli vs mlflow (p50, req/s) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in models:
        m = _MEDIANS[name]
        ours1, ours16 = m[("infer-cli", 1)], m[("infer-cli", 16)]
        cells = [
            f"{ours1['p50'] / 1000:.2f} ms",
            f"{ours16['rps']:,.0f}",
            f"{ours16['p99'] / 1000:.1f} ms",
        ]
        for other in ("infer-cli, bare .joblib", "infer-cli, MLflow dir"):
            p50 = _ratio(m, other, "infer-cli", 1, "p50")
            rps = _ratio(m, other, "infer-cli", 16, "rps")
            cells.append(f"{p50:.2f} x, {rps:.2f} x")
        theirs1, theirs16 = m[("mlflow", 1)], m[("mlflow", 16)]
        cells.append(f"{theirs1['p50'] / 1000:.2f} ms / {theirs16['rps']:,.0f}")
        p50 = _ratio(m, "infer-cli", "mlflow", 1, "p50")
        rps = _ratio(m, "infer-cli", "mlflow", 16, "rps")
        cells.append(f"{p50:.3f} x, {rps:.1f} x")
        print(f"| {name} | {' | '.join(cells)} |")


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
    print(
        "\n| server | ready in (s) | p50 at 1 conn vs mlflow | req/s at 16 conns vs mlflow "
        "| p50 vs infer-cli's directory | req/s vs infer-cli's directory |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for server, server_runs in runs.items():
        ready = statistics.median(run["ready_seconds"] for run in server_runs)
        cells = [f"{ready:.2f}"]
        for base in ("mlflow", "infer-cli"):
            p50 = _ratio(medians, server, base, 1, "p50")
            rps = _ratio(medians, server, base, 16, "rps")
            cells += [f"{p50:.3f} x", f"{rps:.2f} x"]
        print(f"| {server} | {' | '.join(cells)} |")
    _MEDIANS[name] = medians  # for the summary
    loads = [run["load"] for server_runs in runs.values() for run in server_runs]
    print(f"\n(1-minute load average during the rounds: {min(loads):.2f} to {max(loads):.2f})")


if __name__ == "__main__":
    main()
