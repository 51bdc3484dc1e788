"""Where a one-row request's time goes, in process: the fast route against the DataFrame route.

For each model (the pipelines `infer-cli train` makes from sample_data/, as in bench_serve),
answers one single-row JSON `dataframe_split` request through the server's own `App` (decode,
validate, predict, encode: everything but the socket) many times, in blocks that alternate
between the model as loaded (its fast route) and the same model made to take the DataFrame,
and prints the median CPU time of a request on each, and their ratio. CPU time of the
scoring thread, not wall time: on a shared machine it moves far less with the load.

    python benchmarks/bench_route.py [--models churn-auto,churn-forest,...] [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = "iris-auto,churn-auto,churn-forest,churn-gbm,reviews-auto,housing-auto,housing-forest"
TARGETS = {"iris": "species", "churn": "churned", "reviews": "sentiment", "housing": "price"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS, help="DATA-ALGORITHM, comma-separated.")
    parser.add_argument("--requests", type=int, default=300, help="Requests per block.")
    parser.add_argument("--blocks", type=int, default=6, help="Blocks, routes alternating.")
    args = parser.parse_args()
    print("| model | route | fast route ms | DataFrame ms | ratio |")
    print("| --- | --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as work:
        for name in args.models.split(","):
            fast, usual, note = measure(name, Path(work), args.requests, args.blocks)
            print(f"| {name} | {note} | {fast:.3f} | {usual:.3f} | {fast / usual:.3f} x |")


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
