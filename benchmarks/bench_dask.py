"""Benchmark `infer-cli predict --engine dask` on a local cluster against the single-process
engine, on the same partitioned CSV input, each timed as whole processes.

    python benchmarks/bench_dask.py                       # 4 partitions of 2.5M rows, 3 rounds
    python benchmarks/bench_dask.py --rows 500000 --rounds 5

The partitions (4 float columns) and the model (StandardScaler + LogisticRegression) are made
under --workdir and kept between runs. "single process" scores the partitions one after the
other, one `infer-cli predict` per file (what a job does without a cluster); "dask local
cluster" is one `infer-cli predict --engine dask` over the directory, which starts a worker per
core, scores, and stops them, all inside the timed run. Rounds alternate the order; the table
shows medians of wall time, rows per second and the ratio to the single process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

# The same model and columns as the single-file benchmark, so their figures compare.
from bench_predict import BIN, load, make_model, write_floats

SINGLE = "single process"
DASK = "dask local cluster"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rows", type=int, default=2_500_000, help="rows per partition")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "infer-cli-bench-dask"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    model = make_model(args.workdir)
    inputs = make_partitions(args.workdir, args.partitions, args.rows)
    total = args.partitions * args.rows
    print(f"load average at start: {load()}; {os.cpu_count()} cores")
    print(f"{args.partitions} partitions of {args.rows:,} rows under {inputs}")
    measured: dict[str, list[float]] = {SINGLE: [], DASK: []}
    for round_number in range(args.rounds):
        order = [SINGLE, DASK] if round_number % 2 == 0 else [DASK, SINGLE]
        for name in order:
            runner = run_single if name == SINGLE else run_dask
            seconds = runner(model, inputs, args.workdir)
            measured[name].append(seconds)
            print(f"  round {round_number + 1}: {name:20} {seconds:7.2f} s")
    check_outputs(args.workdir, args.partitions)
    reference = statistics.median(measured[SINGLE])
    print(f"\n{total:,} rows, 4 float columns (medians of {args.rounds}; load {load()})")
    print(f"{'engine':22} {'seconds':>9} {'rows/s':>12} {'vs single':>10}")
    for name, times in measured.items():
        median = statistics.median(times)
        print(f"{name:22} {median:9.2f} {total / median:12,.0f} {reference / median:9.2f}x")


def make_partitions(workdir: Path, partitions: int, rows: int) -> Path:
    """`partitions` CSV files of `rows` rows of 4 normal floats with 6 decimals, made once."""
    import numpy as np

    directory = workdir / f"in_{partitions}x{rows}"
    if directory.exists():
        return directory
    staging = workdir / f".{directory.name}.part"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    rng = np.random.default_rng(0)
    for index in range(partitions):
        write_floats(staging / f"day-{index:02d}.csv", rows, rng)
    staging.rename(directory)
    return directory


def run_single(model: Path, inputs: Path, workdir: Path) -> float:
    out = workdir / "out_single"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    began = time.perf_counter()
    for source in sorted(inputs.glob("*.csv")):
        run([BIN / "infer-cli", "predict", "-q", "-m", model, "-i", source,
             "-o", out / source.name])  # fmt: skip
    return time.perf_counter() - began


def run_dask(model: Path, inputs: Path, workdir: Path) -> float:
    out = workdir / "out_dask"
    shutil.rmtree(out, ignore_errors=True)
    began = time.perf_counter()
    run([BIN / "infer-cli", "predict", "-q", "--engine", "dask", "-m", model, "-i", inputs,
         "-o", out])  # fmt: skip
    return time.perf_counter() - began


def run(command: list[str | Path]) -> None:
    result = subprocess.run([str(part) for part in command], capture_output=True)
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {command}\n{result.stderr.decode()}")


def check_outputs(workdir: Path, partitions: int) -> None:
    """Byte for byte the same parts from both engines, in input order."""
    singles = sorted((workdir / "out_single").glob("*.csv"))
    parts = sorted((workdir / "out_dask").glob("part-*.csv"))
    if len(parts) != partitions or not (workdir / "out_dask" / "_SUCCESS").exists():
        raise SystemExit(f"expected {partitions} parts and _SUCCESS in {workdir / 'out_dask'}")
    for single, part in zip(singles, parts, strict=True):
        if single.read_bytes() != part.read_bytes():
            raise SystemExit(f"outputs differ: {single} vs {part}")
    print(f"  the {partitions} parts are byte for byte the single-process outputs")


if __name__ == "__main__":
    main()
