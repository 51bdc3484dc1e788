"""Open Inference (V2) on `infer-cli serve`: the binary tensor data extension against JSON
tensors, as NVIDIA's tritonclient writes and reads them, for 1 row and 10,000 rows.

Trains the sample churn model (numbers and text: INT64, FP64 and BYTES inputs, one per
column) and the iris model (four FP64 columns, string labels), starts `infer-cli serve` on
a free loopback port, and for each model, row count and mode builds the request with
`InferenceServerClient.generate_request_body` (one input per column, outputs `predict` and
`predict_proba`), then posts it over one keep-alive connection and decodes each answer with
`InferResult.from_response_body` and `as_numpy`, as `infer()` does. Prints the request and
response bytes and the p50 (and p95) round trip, modes alternating request by request.

    python benchmarks/bench_v2.py [--requests 200] [--large-requests 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tritonclient.http as triton

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"churn": "churned", "iris": "species"}
NUMPY = {"FP64": np.float64, "INT64": np.int64, "BOOL": np.bool_}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit("infer-cli serve exited before it was ready")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/v2/health/ready")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("infer-cli serve was not ready within 60 s")


def _inputs(metadata: dict[str, Any], rows: pd.DataFrame, binary: bool) -> list[Any]:
    inputs = []
    for tensor in metadata["inputs"]:
        values = rows[tensor["name"]].to_numpy()
        if tensor["datatype"] == "BYTES":
            values = np.array([str(value).encode() for value in values], dtype=np.object_)
        else:
            values = values.astype(NUMPY[tensor["datatype"]])
        infer_input = triton.InferInput(tensor["name"], [len(rows)], tensor["datatype"])
        infer_input.set_data_from_numpy(values, binary_data=binary)
        inputs.append(infer_input)
    return inputs


def _request(
    metadata: dict[str, Any], rows: pd.DataFrame, binary: bool
) -> tuple[bytes, dict[str, str]]:
    outputs = [
        triton.InferRequestedOutput(o["name"], binary_data=binary) for o in metadata["outputs"]
    ]
    body, json_size = triton.InferenceServerClient.generate_request_body(
        _inputs(metadata, rows, binary), outputs=outputs
    )
    headers = {} if json_size is None else {"Inference-Header-Content-Length": str(json_size)}
    return body, headers


def _round_trip(
    connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[float, int]:
    began = time.perf_counter()
    connection.request("POST", path, body, headers)
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        raise SystemExit(f"{response.status}: {answer[:300]!r}")
    length = response.getheader("Inference-Header-Content-Length")
    result = triton.InferResult.from_response_body(
        answer, header_length=None if length is None else int(length)
    )
    result.as_numpy("predict")
    return time.perf_counter() - began, len(answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests of 1 row")
    parser.add_argument("--large-requests", type=int, default=40, help="of 10,000 rows")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    executable = Path(sys.executable).with_name("infer-cli")
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, target in MODELS.items():
            model = Path(workdir) / name
            subprocess.run(
                [
                    executable,
                    "train",
                    "-i",
                    ROOT / "sample_data" / f"{name}.csv",
                    "--target",
                    target,
                    "-o",
                    model,
                    "-q",
                ],
                check=True,
            )
            port = _free_port()
            server = subprocess.Popen(
                [executable, "serve", "-m", model, "-p", str(port), "--no-access-log"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait(port, server)
                client = triton.InferenceServerClient(f"127.0.0.1:{port}")
                metadata = client.get_model_metadata(name)
                client.close()
                frame = pd.read_csv(ROOT / "sample_data" / f"{name}_new.csv").dropna()
                path = f"/v2/models/{name}/infer"
                for count, repeats in ((1, args.requests), (10_000, args.large_requests)):
                    rows = frame.sample(count, replace=True, random_state=0)
                    requests = {
                        mode: _request(metadata, rows, mode == "binary")
                        for mode in ("json", "binary")
                    }
                    times: dict[str, list[float]] = {"json": [], "binary": []}
                    sizes: dict[str, int] = {}
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                    for index in range(repeats + 3):
                        for mode, (body, headers) in requests.items():
                            seconds, sizes[mode] = _round_trip(connection, path, body, headers)
                            if index >= 3:  # the first requests warm the server up
                                times[mode].append(seconds)
                    connection.close()
                    for mode, (body, _) in requests.items():
                        ordered = sorted(times[mode])
                        results.append(
                            {
                                "model": name,
                                "rows": count,
                                "mode": mode,
                                "request_bytes": len(body),
                                "response_bytes": sizes[mode],
                                "p50_ms": statistics.median(ordered) * 1000,
                                "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
                                "requests": len(ordered),
                            }
                        )
            finally:
                server.terminate()
                server.wait(30)
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print(
        f"{'model':6} {'rows':>6} {'mode':6} {'request B':>10} {'response B':>10} "
        f"{'p50 ms':>8} {'p95 ms':>8}"
    )
    for row in results:
        print(
            f"{row['model']:6} {row['rows']:>6} {row['mode']:6} {row['request_bytes']:>10,} "
            f"{row['response_bytes']:>10,} {row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
