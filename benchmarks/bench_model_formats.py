"""Benchmark loading a model in each file format: infer-cli's own (joblib, skops) and MLflow's
(skops, cloudpickle, pickle), the MLflow ones also loaded by `mlflow.pyfunc.load_model` as
the reference. Loading is what every `predict` run and every server start pays first.

    python benchmarks/bench_model_formats.py                  # logistic and forest, 7 rounds
    python benchmarks/bench_model_formats.py --rounds 11 --models forest

Needs mlflow (the test extra's mlflow-skinny will do). Each round loads every variant once, in
an order that rotates from round to round, in this one process after a warm-up load of each
(so imports are not counted); the table shows the median, the ratio to infer-cli's joblib
load, and the ratio of infer-cli to MLflow on the same MLflow directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "churn.csv"
MLFLOW_FORMATS = ("skops", "cloudpickle", "pickle")


def build(workdir: Path, model_name: str) -> dict[str, Path]:
    """The churn pipeline saved in every format; returns variant name -> directory."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    from infer_cli.core.store import save_model
    from infer_cli.training import TrainOptions, train

    frame = pd.read_csv(SAMPLE)
    result = train(frame, TrainOptions(target="churned", algorithm=model_name))
    features = frame.drop(columns=["churned"])
    signature = infer_signature(features, result.estimator.predict(features))
    paths: dict[str, Path] = {}
    for serialization in ("joblib", "skops"):
        paths[f"infer-cli {serialization}"] = workdir / f"{model_name}-{serialization}"
        save_model(result.estimator, result.card, paths[f"infer-cli {serialization}"],
                   serialization=serialization)  # fmt: skip
    for serialization in MLFLOW_FORMATS:
        directory = workdir / f"{model_name}-mlflow-{serialization}"
        mlflow.sklearn.save_model(
            result.estimator, directory, serialization_format=serialization,
            skops_trusted_types=result.card.trusted_types or None, signature=signature,
            pip_requirements=[],
        )  # fmt: skip
        paths[f"mlflow {serialization}"] = directory
    return paths


def loaders(paths: dict[str, Path]) -> dict[str, Callable[[], Any]]:
    import mlflow.pyfunc

    from infer_cli.core.store import load_model

    result: dict[str, Callable[[], Any]] = {}
    for name, path in paths.items():
        result[name] = lambda path=path: load_model(path)
        if name.startswith("mlflow"):
            result[f"{name} (by MLflow)"] = lambda path=path: mlflow.pyfunc.load_model(str(path))
    return result


def measure(load: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    names = list(load)
    for name in names:
        load[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            began = time.perf_counter()
            load[name]()
            seconds[name].append(time.perf_counter() - began)
    return {name: statistics.median(values) for name, values in seconds.items()}


def size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.glob("model.*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--models", default="logistic,forest")
    parser.add_argument("--workdir", type=Path, default=None)
    options = parser.parse_args()
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    warnings.filterwarnings("ignore")
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="bench-formats-"))
    print(f"load average {os.getloadavg()[0]:.2f}; {options.rounds} rounds; files in {workdir}")
    for model_name in options.models.split(","):
        paths = build(workdir, model_name)
        medians = measure(loaders(paths), options.rounds)
        reference = medians["infer-cli joblib"]
        print(f"\n{model_name}")
        print(
            f"  {'variant':<32}{'median ms':>10}{'vs joblib':>11}{'vs MLflow':>11}{'file KiB':>10}"
        )
        for name, value in medians.items():
            by_mlflow = medians.get(f"{name} (by MLflow)")
            versus = f"{value / by_mlflow:.2f}x" if by_mlflow else ""
            path = paths.get(name.removesuffix(" (by MLflow)"))
            kib = f"{size(path) / 1024:,.0f}" if path and "(by MLflow)" not in name else ""
            print(
                f"  {name:<32}{value * 1000:>10.1f}{value / reference:>10.2f}x{versus:>11}{kib:>10}"
            )


if __name__ == "__main__":
    main()
