"""Where a one-row request's time goes, in process: the fast route against the DataFrame route.

For each model (the pipelines `infer-cli train` makes from sample_data/, as in bench_serve),
answers one single-row JSON `dataframe_split` request through the server's own `App` (decode,
validate, predict, encode: everything but the socket) many times, in blocks that alternate
between the model as loaded (its fast route) and the same model made to take the DataFrame,
and prints the median CPU time of a request on each, and their ratio. CPU time of the
scoring thread, not wall time: on a shared machine it moves far less with the load.

    python benchmarks/bench_route.py [--models churn-auto,churn-forest,...] [--requests 300]
    python benchmarks/bench_route.py --sources [--mlflow-python /work/bench-venv/bin/python]

With --sources, the same request on the fast route of the same pipeline loaded three ways,
blocks rotating between them: our directory, a bare .joblib file and an MLflow directory
(saved by MLflow's own Python in a subprocess, as in bench_serve), with the ratios to the
directory: what a user's own file costs the server's thread, apart from the machine's load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODELS = "iris-auto,churn-auto,churn-forest,churn-gbm,reviews-auto,housing-auto,housing-forest"
TARGETS = {"iris": "species", "churn": "churned", "reviews": "sentiment", "housing": "price"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS, help="DATA-ALGORITHM, comma-separated.")
    parser.add_argument("--requests", type=int, default=300, help="Requests per block.")
    parser.add_argument("--blocks", type=int, default=6, help="Blocks, routes alternating.")
    parser.add_argument("--sources", action="store_true", help="Directory, bare file, MLflow.")
    parser.add_argument("--mlflow-python", default="/work/bench-venv/bin/python")
    args = parser.parse_args()
    if args.sources:
        compare_sources(args)
        return
    print("| model | route | fast route ms | DataFrame ms | ratio |")
    print("| --- | --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as work:
        for name in args.models.split(","):
            fast, usual, note = measure(name, Path(work), args.requests, args.blocks)
            print(f"| {name} | {note} | {fast:.3f} | {usual:.3f} | {fast / usual:.3f} x |")


def compare_sources(args: argparse.Namespace) -> None:
    print("| model | directory ms | bare .joblib ms | MLflow dir ms | bare / dir | MLflow / dir |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as work:
        for name in args.models.split(","):
            ms = measure_sources(name, Path(work), args.requests, args.blocks, args.mlflow_python)
            directory, bare, mlflow = ms["directory"], ms["bare"], ms["mlflow"]
            print(f"| {name} | {directory:.3f} | {bare:.3f} | {mlflow:.3f} "
                  f"| {bare / directory:.2f} x | {mlflow / directory:.2f} x |")  # fmt: skip


def measure_sources(
    name: str, work: Path, requests: int, blocks: int, mlflow_python: str
) -> dict[str, float]:
    import subprocess

    import joblib
    import pandas as pd
    from bench_serve import SAVE_FOR_MLFLOW

    from infer_cli.core import load_model, save_model
    from infer_cli.training import TrainOptions, train

    data, _, algorithm = name.partition("-")
    options = TrainOptions(target=TARGETS[data], algorithm=algorithm or "auto")
    result = train(pd.read_csv(ROOT / f"sample_data/{data}.csv"), options)
    rows = pd.read_csv(ROOT / f"sample_data/{data}_new.csv")
    paths = {"directory": work / name, "bare": work / f"{name}.joblib",
             "mlflow": work / f"{name}-mlflow"}  # fmt: skip
    save_model(result.estimator, result.card, paths["directory"])
    joblib.dump(result.estimator, paths["bare"])
    rows.to_json(work / f"{name}.json", orient="split", index=False)
    subprocess.run(
        [mlflow_python, "-c", SAVE_FOR_MLFLOW, paths["bare"], work / f"{name}.json",
         paths["mlflow"]],
        check=True, capture_output=True,
    )  # fmt: skip
    models = {source: load_model(path) for source, path in paths.items()}
    body = json.dumps(
        {"dataframe_split": json.loads(rows.head(1).to_json(orient="split", index=False))}
    )
    times: dict[str, list[float]] = {source: [] for source in models}
    order = list(models)
    for block in range(blocks * len(order)):
        source = order[(block + block // len(order)) % len(order)]
        times[source] += cpu_per_request(models[source], body, requests)
    return {source: statistics.median(values) * 1000 for source, values in times.items()}


def cpu_per_request(model: Any, body: str, requests: int) -> list[float]:
    from infer_cli.serve.messages import Headers, Request
    from infer_cli.serve.routes import App

    request = Request("POST", "/invocations", Headers({"Content-Type": "application/json"}),
                      body.encode())  # fmt: skip
    app = App()
    app.model = model
    times = []
    for _ in range(requests):
        began = time.thread_time()
        reply = app.answer([app.route(request)])[0]  # type: ignore[list-item]
        times.append(time.thread_time() - began)
        assert reply.status == 200, reply.body
    return times


def measure(name: str, work: Path, requests: int, blocks: int) -> tuple[float, float, str]:
    import pandas as pd

    from infer_cli.core import load_model, save_model
    from infer_cli.serve.messages import Headers, Request
    from infer_cli.serve.routes import App
    from infer_cli.training import TrainOptions, train

    data, _, algorithm = name.partition("-")
    options = TrainOptions(target=TARGETS[data], algorithm=algorithm or "auto")
    result = train(pd.read_csv(ROOT / f"sample_data/{data}.csv"), options)
    save_model(result.estimator, result.card, work / name)
    model = load_model(work / name)
    row = pd.read_csv(ROOT / f"sample_data/{data}_new.csv").head(1)
    body = json.dumps({"dataframe_split": json.loads(row.to_json(orient="split", index=False))})
    request = Request("POST", "/invocations", Headers({"Content-Type": "application/json"}),
                      body.encode())  # fmt: skip
    app = App()
    app.model = model
    route = model.route
    times: dict[bool, list[float]] = {True: [], False: []}
    for block in range(blocks * 2):
        fast = block % 2 == 0
        model.route = route if fast else None
        for _ in range(requests):
            began = time.thread_time()
            job = app.route(request)
            reply = app.answer([job])[0]  # type: ignore[list-item]
            times[fast].append(time.thread_time() - began)
            assert reply.status == 200, reply.body
    model.route = route
    return (
        statistics.median(times[True]) * 1000,
        statistics.median(times[False]) * 1000,
        model.route_note,
    )


if __name__ == "__main__":
    main()
