"""What the prediction log costs: `infer-cli serve` without it, with `--log-predictions DIR`
(Parquet, the default) and with `--log-format jsonl`, in the same run.

Saves the numeric model of `bench_serve.py` (a scaler + logistic regression on four float
columns), then, several rounds alternating, starts each server and drives single-row JSON
requests with wrk at 1 and 16 keep-alive connections. Beside wrk's figures, the server
process's CPU time per request (user + system, from /proc), which a machine shared with
other work disturbs far less than latencies; and, for the logged servers, the rows the
log wrote and dropped (from the summary each server prints as it stops). Prints medians over
rounds.

Then, in process, the log's own work alone, which a loaded machine's noise in the figures
above can hide: the scoring thread's CPU time to hand a request's rows to the queue, and the
writer thread's CPU time per row to make a table of them and write it.

    python benchmarks/bench_prediction_log.py [--seconds 5] [--rounds 5] [--levels 1,16]
                                              [--requests 2000] [--blocks 6]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_secure import BODY, _save_model, _wait_ready
from bench_serve import WRK_SCRIPT, _free_port, _wrk, running

TICKS = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="Load per level and round.")
    parser.add_argument("--rounds", type=int, default=5, help="Rounds, servers alternating.")
    parser.add_argument("--levels", default="1,16", help="Connections.")
    parser.add_argument("--requests", type=int, default=20000, help="In process, per block.")
    parser.add_argument("--blocks", type=int, default=6, help="In process, alternating.")
    args = parser.parse_args()
    levels = tuple(int(level) for level in args.levels.split(","))
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        model = _save_model(work)
        script = work / "plain.lua"
        script.write_text(WRK_SCRIPT % {"body": BODY})
        executable = str(Path(sys.executable).with_name("infer-cli"))
        serve = [executable, "serve", "-m", str(model), "-p", "{port}", "--no-access-log"]
        servers = {
            "no log": serve,
            "log parquet": [*serve, "--log-predictions", str(work / "parquet")],
            "log jsonl": [
                *serve,
                "--log-predictions",
                str(work / "jsonl"),
                "--log-format",
                "jsonl",
            ],
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        logged: dict[str, list[tuple[int, int]]] = {name: [] for name in servers}
        for round_number in range(args.rounds):
            for name, command in servers.items():
                print(f"round {round_number + 1}/{args.rounds}: {name}", file=sys.stderr)
                port = _free_port()
                log_file = work / "server.log"
                offset = log_file.stat().st_size if log_file.exists() else 0
                with running(command, port, work) as process:
                    _wait_ready(port, process, time.perf_counter(), "http")
                    url = f"http://127.0.0.1:{port}/invocations"
                    _wrk(script, url, 16, 1)  # warm-up
                    measured = {}
                    for connections in levels:
                        before = _cpu_seconds(process.pid)
                        result = _wrk(script, url, connections, args.seconds)
                        spent = _cpu_seconds(process.pid) - before
                        result["cpu_ms"] = 1000 * spent / max(result["requests"], 1)
                        measured[str(connections)] = result
                    runs[name].append(measured)
                with log_file.open("rb") as server_log:
                    server_log.seek(offset)
                    logged[name].append(_log_counts(server_log.read().decode()))
    print("| connections | server | req/s | p50 ms | p99 ms | server CPU ms/request | failed |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for level in map(str, levels):
        for name, measured in runs.items():
            results = [run[level] for run in measured]
            rps = statistics.median(result["rps"] for result in results)
            p50 = statistics.median(result["p50"] for result in results) / 1000
            p99 = statistics.median(result["p99"] for result in results) / 1000
            cpu = statistics.median(result["cpu_ms"] for result in results)
            failed = sum(result["failed"] for result in results)
            print(
                f"| {level} | {name} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {cpu:.3f} | {failed} |"
            )
    for name, counts in logged.items():
        if name != "no log":
            written = sum(count[0] for count in counts)
            dropped = sum(count[1] for count in counts)
            print(f"{name}: {written:,} rows logged, {dropped:,} dropped, over every run")
        _in_process(work, args.requests, args.blocks)


def _in_process(work: Path, requests: int, blocks: int) -> None:
    """The log's own work, alone: the scoring thread's hand-over of a one-row request (four
    float columns, a label), and the writer's turning rows into a table and a file, per row,
    for takes of 100 and 1,000 rows."""
    import numpy as np

    from infer_cli.core.model import Prepared
    from infer_cli.serve.payloads import Payload
    from infer_cli.serve.prediction_log import PredictionLog, log_table
    from infer_cli.serve.stats import ServeStats
    from infer_cli.tables.log_files import RollingFiles

    class _Card:
        classes = ("no", "yes")
        sha256 = "0" * 64

    class _Model:
        can_predict_proba = True
        card = _Card()

    class _Request:
        received = time.perf_counter()

    class _Job:
        request_id = "0" * 32
        request = _Request()
        model = _Model()

    columns = {name: [0.5] for name in "abcd"}
    payload = Payload(columns, rows=1)
    prepared = Prepared({name: np.array(values) for name, values in columns.items()}, 1)
    label = np.array(["yes"], dtype=object)
    log = PredictionLog(work / "hand-over", ServeStats(), lambda job: ("numeric", "v"))
    log.queue_rows = 10 * requests
    hand_over = []
    for _ in range(blocks):
        began = time.thread_time()
        for _ in range(requests):
            log.record(_Job(), payload, prepared, label, None)
        hand_over.append(1e6 * (time.thread_time() - began) / requests)
    log.close()
    print()
    print("| the log's own work, in process | CPU µs |")
    print("| --- | ---: |")
    median = statistics.median(hand_over)
    print(f"| hand-over to the queue, per request (scoring thread) | {median:.2f} |")
    entries = [log.entry(_Job(), payload, prepared, label, None) for _ in range(1000)]
    for take in (100, 1000):
        for format in ("parquet", "jsonl"):
            files = RollingFiles(work / f"writer-{take}-{format}", format)
            spent = []
            for _ in range(blocks):
                began = time.process_time()
                files.write("model", log_table(entries[0].model, entries[:take]))
                spent.append(1e6 * (time.process_time() - began) / take)
            files.close()
            median = statistics.median(spent)
            print(f"| writer, {format}, takes of {take:,} rows, per row | {median:.2f} |")


def _cpu_seconds(pid: int) -> float:
    """User and system time of a process (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _log_counts(summary: str) -> tuple[int, int]:
    """Rows written and dropped, as the server's summary says."""
    found = re.search(r"prediction log\s+([\d,]+) rows in [\d,]+ files, ([\d,]+) dropped", summary)
    if found is None:
        return 0, 0
    return int(found[1].replace(",", "")), int(found[2].replace(",", ""))


if __name__ == "__main__":
    main()
