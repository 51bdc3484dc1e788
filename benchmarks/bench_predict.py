"""Benchmark `infer-cli predict` against an in-memory pyarrow reference, a naive pandas script
and `mlflow models predict`, each run as a whole process on the same model and CSV.

    python benchmarks/bench_predict.py                    # numeric 1M and 10M rows, 3 rounds
    python benchmarks/bench_predict.py --rows 1000000 --rounds 5 --skip mlflow
    python benchmarks/bench_predict.py --models churn-auto churn-forest churn-gbm --rows 1000000

Models: `numeric` (4 float columns, StandardScaler + LogisticRegression) and DATA-ALGORITHM,
the pipeline `infer-cli train --algorithm ALGORITHM` makes from sample_data/DATA.csv (churn:
identifier, numbers, categories, missing values; reviews: free text; housing, iris), scoring
DATA_new.csv's rows repeated to --rows. Each is saved under --workdir (kept between runs) as
an infer-cli model, a bare .joblib file and, when --mlflow-python exists, an MLflow model; the
infer-cli rows are `infer-cli predict` on each of the three. Each round runs every tool once,
in an order that rotates from round to round; the table shows medians of wall time, ratios to
the reference and to the naive script, and the largest peak RSS (from /usr/bin/time -v).
`infer-cli --help` start-up is timed with hyperfine when installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

COLUMNS = ["x0", "x1", "x2", "x3"]
BIN = Path(sys.executable).parent

REFERENCE = """
import sys, joblib, pyarrow as pa, pyarrow.csv as pcsv
model, source, target = sys.argv[1:]
estimator = joblib.load(model)
table = pcsv.read_csv(source)
predictions = estimator.predict(table.to_pandas())
table = table.append_column("prediction", pa.array(predictions))
pcsv.write_csv(table, target, pcsv.WriteOptions(quoting_style="none"))
"""

NAIVE = """
import sys, joblib, pandas as pd
model, source, target = sys.argv[1:]
estimator = joblib.load(model)
frame = pd.read_csv(source)
frame["prediction"] = estimator.predict(frame)
frame.to_csv(target, index=False)
"""

MLFLOW_SAVE = """
import sys, joblib, pandas as pd, mlflow.sklearn
from mlflow.models import infer_signature
signature = infer_signature(pd.read_csv(sys.argv[3]).head(1000)) if len(sys.argv) > 3 else None
mlflow.sklearn.save_model(
    joblib.load(sys.argv[1]), sys.argv[2], signature=signature, serialization_format="cloudpickle"
)
"""
TARGETS = {"iris": "species", "churn": "churned", "reviews": "sentiment", "housing": "price"}
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--models", nargs="+", default=["numeric"], help="numeric, DATA-ALGORITHM")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "infer-cli-bench-predict"
    )
    parser.add_argument("--mlflow-python", type=Path, default=Path("/work/bench-venv/bin/python"))
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["reference", "naive", "mlflow"], help="tools"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if not Path("/usr/bin/time").exists():
        sys.exit("needs GNU time at /usr/bin/time (apt-get install time) for peak memory")
    (args.workdir / "reference.py").write_text(REFERENCE)
    (args.workdir / "naive.py").write_text(NAIVE)

    print(f"load average at start: {load()}")
    print_startup()
    results = []
    for name in args.models:
        model_dir = make_model(args.workdir, name)
        for rows in args.rows:
            data = make_data(args.workdir, rows, name)
            mlflow_dir = None
            if "mlflow" not in args.skip:
                mlflow_dir = make_mlflow_model(args.mlflow_python, model_dir, args.workdir, data)
            tools = commands(args, model_dir, mlflow_dir, data)
            results.append((name, rows, run_rounds(tools, args.rounds)))
            check_outputs(args.workdir)
    print(f"\nload average at end: {load()}")
    for name, rows, measured in results:
        print_table(name, rows, measured)


def make_model(workdir: Path, name: str) -> Path:
    """The model `name` as an infer-cli model directory, with a bare model.joblib beside it
    (the directory's own file: the same bytes)."""
    if name != "numeric":
        return make_trained_model(workdir, name)
    return make_numeric_model(workdir)


def make_trained_model(workdir: Path, name: str) -> Path:
    """What `infer-cli train --algorithm ALGORITHM` makes of sample_data/DATA.csv."""
    import pandas as pd

    from infer_cli.core.store import save_model
    from infer_cli.training import TrainOptions, train

    directory = workdir / f"model-{name}"
    if directory.exists():
        return directory
    data, _, algorithm = name.partition("-")
    if data not in TARGETS:
        sys.exit(f"bench_predict: unknown model '{name}' (numeric, or DATA-ALGORITHM)")
    options = TrainOptions(target=TARGETS[data], algorithm=algorithm or "auto")
    result = train(pd.read_csv(ROOT / f"sample_data/{data}.csv"), options)
    save_model(result.estimator, result.card, directory)
    return directory


def make_numeric_model(workdir: Path) -> Path:
    """A scaler + logistic regression pipeline on 4 float columns, as an infer-cli model."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from infer_cli.core.card import ModelCard
    from infer_cli.core.signature import Column, Signature
    from infer_cli.core.store import save_model

    directory = workdir / "model"
    if directory.exists():
        return directory
    rng = np.random.default_rng(1)
    features = pd.DataFrame(rng.normal(size=(20_000, 4)), columns=COLUMNS)
    target = np.where(features.x0 + 0.5 * features.x1 - features.x2 > 0, "yes", "no")
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, target)
    card = ModelCard(
        task="classification",
        target="y",
        classes=pipeline.classes_.tolist(),
        signature=Signature(tuple(Column(name, "float") for name in COLUMNS)),
    )
    save_model(pipeline, card, directory)
    return directory


def make_mlflow_model(python: Path, model_dir: Path, workdir: Path, data: Path) -> Path | None:
    """The model saved by MLflow; a trained one with a signature inferred from the data."""
    if not python.exists():
        print(f"mlflow: skipped ({python} not found)")
        return None
    directory = workdir / f"mlflow-{model_dir.name}"
    if not directory.exists():
        command = [str(python), "-c", MLFLOW_SAVE, str(model_dir / "model.joblib"), str(directory)]
        if model_dir.name != "model":
            command.append(str(data))
        subprocess.run(command, check=True, capture_output=True)
    return directory


def make_data(workdir: Path, rows: int, name: str = "numeric") -> Path:
    """`rows` rows, as a CSV made once: 4 normal floats written with 6 decimals, or the
    sample set's new rows repeated."""
    import numpy as np

    data = name.partition("-")[0]
    path = workdir / f"data_{data}_{rows}.csv"
    if path.exists():
        return path
    partial = path.with_suffix(".part")
    if data == "numeric":
        write_floats(partial, rows, np.random.default_rng(0))
    else:
        write_repeated(partial, rows, ROOT / f"sample_data/{data}_new.csv")
    partial.rename(path)
    return path


def write_repeated(path: Path, rows: int, source: Path) -> None:
    """The rows of `source`, over and over, to `rows` rows (header once)."""
    lines = source.read_text().splitlines(keepends=True)
    header, body = lines[0], "".join(lines[1:])
    count = len(lines) - 1
    with path.open("w") as out:
        out.write(header)
        for _ in range(rows // count):
            out.write(body)
        out.writelines(lines[1 : 1 + rows % count])


def write_floats(path: Path, rows: int, rng: Any) -> None:
    """A CSV of `rows` rows of 4 normal floats from `rng` with 6 decimals, a million at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    schema = pa.schema([(name, pa.string()) for name in COLUMNS])
    options = pcsv.WriteOptions(quoting_style="none", quoting_header="none")
    with pcsv.CSVWriter(str(path), schema, write_options=options) as writer:
        for start in range(0, rows, 1_000_000):
            size = min(1_000_000, rows - start)
            columns = [pa.array(np.char.mod("%.6f", rng.normal(size=size))) for _ in COLUMNS]
            writer.write_table(pa.table(columns, schema=schema))


def commands(
    args: argparse.Namespace, model_dir: Path, mlflow_dir: Path | None, data: Path
) -> dict[str, list[str]]:
    out = args.workdir / "out"
    tools = {
        "infer-cli predict": [
            str(BIN / "infer-cli"),
            "predict",
            "-m",
            str(model_dir),
            "-i",
            str(data),
            "-o",
            f"{out}_infer.csv",
            "-q",
        ],
        "infer-cli predict, bare .joblib": [
            str(BIN / "infer-cli"),
            "predict",
            "-m",
            str(model_dir / "model.joblib"),
            "-i",
            str(data),
            "-o",
            f"{out}_bare.csv",
            "-q",
        ],
        "reference (pyarrow, in memory)": [
            sys.executable,
            str(args.workdir / "reference.py"),
            str(model_dir / "model.joblib"),
            str(data),
            f"{out}_reference.csv",
        ],
        "naive pandas script": [
            sys.executable,
            str(args.workdir / "naive.py"),
            str(model_dir / "model.joblib"),
            str(data),
            f"{out}_naive.csv",
        ],
    }
    if "reference" in args.skip:
        raise SystemExit("the reference cannot be skipped: ratios are relative to it")
    if "naive" in args.skip:
        del tools["naive pandas script"]
    if mlflow_dir is not None:
        tools["infer-cli predict, MLflow dir"] = [
            str(BIN / "infer-cli"), "predict", "-m", str(mlflow_dir),
            "-i", str(data), "-o", f"{out}_mlflowdir.csv", "-q",
        ]  # fmt: skip
        mlflow = args.mlflow_python.with_name("mlflow")
        tools["mlflow models predict"] = [
            str(mlflow), "models", "predict", "-m", str(mlflow_dir), "-i", str(data),
            "-t", "csv", "-o", f"{out}_mlflow.json", "--env-manager", "local",
        ]  # fmt: skip
    return tools


def run_rounds(tools: dict[str, list[str]], rounds: int) -> dict[str, tuple[list[float], int]]:
    names = list(tools)
    measured: dict[str, tuple[list[float], int]] = {name: ([], 0) for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            seconds, peak = run_once(tools[name])
            times, largest = measured[name]
            measured[name] = ([*times, seconds], max(largest, peak))
            print(f"  round {round_number + 1}: {name:32} {seconds:7.2f} s  {peak / 1024:7.0f} MiB")
    return measured


def run_once(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one whole process."""
    began = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-v", *command],
        capture_output=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": "file:///tmp/infer-cli-bench-mlruns"},
    )
    seconds = time.perf_counter() - began
    stderr = result.stderr.decode(errors="replace")
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}\n{stderr[-2000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    return seconds, int(peak.group(1)) if peak else 0


def check_outputs(workdir: Path) -> None:
    """The same predictions, in the same order, from every infer-cli run and the reference."""
    lines = 10_000
    for name in ("out_infer.csv", "out_bare.csv", "out_mlflowdir.csv"):
        if not (workdir / name).exists():
            continue
        with open(workdir / name) as ours, open(workdir / "out_reference.csv") as theirs:
            for _ in range(lines):
                mine, reference = ours.readline(), theirs.readline()
                if mine.rsplit(",", 1)[-1] != reference.rsplit(",", 1)[-1].replace('"', ""):
                    raise SystemExit(f"{name}: outputs differ: {mine!r} vs {reference!r}")
        (workdir / name).unlink()
    print(f"  first {lines:,} predictions of each infer-cli run agree with the reference")


def print_startup() -> None:
    hyperfine = shutil.which("hyperfine")
    if hyperfine is None:
        print("infer-cli --help start-up: skipped (hyperfine not installed)")
        return
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        subprocess.run(
            [hyperfine, "--warmup", "3", "--runs", "20", "--export-json", report.name,
             "-N", f"{BIN / 'infer-cli'} --help"],
            check=True, capture_output=True,
        )  # fmt: skip
        timing = json.loads(Path(report.name).read_text())["results"][0]
    print(
        f"infer-cli --help start-up: mean {timing['mean'] * 1000:.0f} ms, "
        f"median {timing['median'] * 1000:.0f} ms (hyperfine, 20 runs)"
    )


def print_table(name: str, rows: int, measured: dict[str, tuple[list[float], int]]) -> None:
    reference = statistics.median(measured["reference (pyarrow, in memory)"][0])
    naive = measured.get("naive pandas script")
    naive_median = statistics.median(naive[0]) if naive else float("nan")
    rounds = len(next(iter(measured.values()))[0])
    print(f"\n{rows:,} rows, model {name} (medians of {rounds})")
    print(f"{'tool':34} {'seconds':>9} {'vs reference':>13} {'vs naive':>9} {'peak RSS':>10}")
    for tool, (times, peak) in measured.items():
        median = statistics.median(times)
        print(
            f"{tool:34} {median:9.2f} {median / reference:12.2f}x {median / naive_median:8.2f}x "
            f"{peak / 1024:7.0f} MiB"
        )


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
