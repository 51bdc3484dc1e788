"""Measure what the drift check costs `infer-cli predict`: the same model and file scored with
and without a training profile, as whole processes.

    python benchmarks/bench_drift.py                      # 1M rows, 3 rounds
    python benchmarks/bench_drift.py --rows 200000 --rounds 5

The model is `infer-cli train` on sample_data/churn.csv (numbers, categories, missing values);
the input, under --workdir, is its rows resampled to --rows with some noise. The model without
a profile is the same directory with the profile taken out of model.json (its SHA-256 covers
the model file alone). Each round runs both, in an order that alternates; the table shows the
medians of wall time, and the time spent counting rows into the profile's bins as reported in
--summary-json (`drift.seconds`), as a share of the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INFER_CLI = Path(sys.executable).with_name("infer-cli")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "infer-cli-bench-drift"
    )
    arguments = parser.parse_args()
    work = arguments.workdir
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"churn-{arguments.rows}.csv"
    profiled, plain = work / "profiled", work / "plain"
    _prepare(work, source, arguments.rows, profiled, plain)
    print(f"load average {os.getloadavg()[0]:.1f}; {arguments.rows:,} rows of {source.name}")
    walls: dict[str, list[float]] = {"with profile": [], "without": []}
    checks: list[float] = []
    for round_number in range(arguments.rounds):
        order = [("with profile", profiled), ("without", plain)]
        for name, model in order if round_number % 2 == 0 else order[::-1]:
            figures = _predict(model, source, work)
            walls[name].append(figures["seconds"]["wall"])
            if figures.get("drift"):
                checks.append(figures["drift"]["seconds"] / figures["seconds"]["wall"])
    with_profile = statistics.median(walls["with profile"])
    without = statistics.median(walls["without"])
    print(f"{'':14} {'wall (median)':>14}")
    print(f"{'without':14} {without:>12.2f} s")
    print(f"{'with profile':14} {with_profile:>12.2f} s   {with_profile / without - 1:+.1%}")
    print(f"drift check, share of the wall time (median of {len(checks)}): "
          f"{statistics.median(checks):.1%}")  # fmt: skip


def _prepare(work: Path, source: Path, rows: int, profiled: Path, plain: Path) -> None:
    if not profiled.exists():
        subprocess.run(
            [INFER_CLI, "train", "-i", ROOT / "sample_data" / "churn.csv", "--target", "churned",
             "-o", profiled, "-q"],
            check=True,
        )  # fmt: skip
    if not plain.exists():
        shutil.copytree(profiled, plain)
        card = json.loads((plain / "model.json").read_text())
        card.pop("profile", None)
        (plain / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    if not source.exists():
        import numpy as np
        import pandas as pd

        base = pd.read_csv(ROOT / "sample_data" / "churn.csv").drop(columns=["churned"])
        rng = np.random.default_rng(0)
        frame = base.sample(rows, replace=True, random_state=0).reset_index(drop=True)
        frame["monthly_charges"] = (frame["monthly_charges"] * rng.normal(1, 0.05, rows)).round(2)
        frame.to_csv(source, index=False)


def _predict(model: Path, source: Path, work: Path) -> dict:
    summary = work / "run.json"
    subprocess.run(
        [INFER_CLI, "predict", "-m", model, "-i", source, "-o", work / "out.csv", "-q",
         "--summary-json", summary],
        check=True,
    )  # fmt: skip
    return dict(json.loads(summary.read_text()))


if __name__ == "__main__":
    main()
