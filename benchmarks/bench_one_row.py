"""One row from the shell: `infer-cli predict` of a single row against `serve`'s ready time.

Trains the sample iris model, then in each round runs, in turn: a one-row `predict` of JSON
Lines on stdin (`--input-format jsonl`), a one-row `predict` of headerless CSV
(`--no-header`), and `infer-cli serve` until `GET /ping` answers 200 (polled every 20 ms).
For each it records the wall time and the CPU time (user + system) the process used: on a
shared machine the CPU time is the steadier figure. Prints medians.

    python benchmarks/bench_one_row.py [--rounds 7] [--json results.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INFER_CLI = str(Path(sys.executable).with_name("infer-cli"))
JSON_ROW = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}\n'
CSV_ROW = "5.1,3.5,1.4,0.2\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", help="Also write every measurement to this file.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-one-row-") as work:
        model = str(Path(work) / "iris")
        subprocess.run(
            [INFER_CLI, "train", "-i", str(ROOT / "sample_data" / "iris.csv"),
             "--target", "species", "-o", model, "-q"],
            check=True,
        )  # fmt: skip
        runs: dict[str, list[tuple[float, float]]] = {
            "predict, one JSON row": [],
            "predict, one CSV row": [],
            "serve, until ready": [],
        }
        for _ in range(args.rounds):
            runs["predict, one JSON row"].append(
                _predict([model, "--input-format", "jsonl"], JSON_ROW)
            )
            runs["predict, one CSV row"].append(_predict([model, "--no-header"], CSV_ROW))
            runs["serve, until ready"].append(_serve(model))
    print(f"{'':24} {'wall (s)':>9} {'CPU (s)':>9}   medians of {args.rounds}")
    for name, figures in runs.items():
        wall = statistics.median(w for w, _ in figures)
        cpu = statistics.median(c for _, c in figures)
        print(f"{name:24} {wall:9.2f} {cpu:9.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))


def _predict(arguments: list[str], row: str) -> tuple[float, float]:
    before = _children_cpu()
    began = time.perf_counter()
    done = subprocess.run(
        [INFER_CLI, "predict", "-m", *arguments, "-q"], input=row.encode(), capture_output=True
    )
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(done.stderr.decode())
    return wall, _children_cpu() - before


def _serve(model: str) -> tuple[float, float]:
    port = _free_port()
    began = time.perf_counter()
    server = subprocess.Popen(
        [INFER_CLI, "serve", "-m", model, "-p", str(port), "--no-access-log", "-q"],
        stderr=subprocess.DEVNULL,
    )
    try:
        while not _ready(port):
            if server.poll() is not None or time.perf_counter() - began > 120:
                raise SystemExit("the server did not start")
            time.sleep(0.02)
        wall = time.perf_counter() - began
        return wall, _process_cpu(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _ready(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/ping")
        return connection.getresponse().status == 200
    except OSError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    """A running process's CPU time so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
