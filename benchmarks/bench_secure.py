"""What a bearer token and TLS cost: `infer-cli serve` plain, with `--auth-token-file`,
and with `--tls-cert` (a self-signed RSA 2048 certificate made by `openssl`).

Saves the numeric model of `bench_serve.py` (a scaler + logistic regression on four float
columns), then, several rounds alternating, starts each server and drives single-row JSON
requests with wrk at 1 and 16 keep-alive connections (the token in each request's
`Authorization` header; wrk's TLS for HTTPS, handshakes once per connection). Prints
medians over rounds.

    python benchmarks/bench_secure.py [--seconds 5] [--rounds 5] [--levels 1,16]
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import WRK_SCRIPT, _free_port, _wrk, running

TOKENS = [f"token-{number:02d}-{'x' * 40}" for number in range(10)]
"""The last is sent: every token of the file is compared, whichever matches."""
BODY = '{"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [[0.1, -1.2, 0.3, 2.0]]}}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="Load per level and round.")
    parser.add_argument("--rounds", type=int, default=5, help="Rounds, servers alternating.")
    parser.add_argument("--levels", default="1,16", help="Connections.")
    args = parser.parse_args()
    levels = tuple(int(level) for level in args.levels.split(","))
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        model = _save_model(work)
        (work / "tokens").write_text("\n".join(TOKENS) + "\n")
        plain = work / "plain.lua"
        plain.write_text(WRK_SCRIPT % {"body": BODY})
        bearer = work / "bearer.lua"
        header = f'wrk.headers["Authorization"] = "Bearer {TOKENS[-1]}"\n'
        bearer.write_text(WRK_SCRIPT % {"body": BODY} + header)
        executable = str(Path(sys.executable).with_name("infer-cli"))
        serve = [executable, "serve", "-m", str(model), "-p", "{port}", "--no-access-log"]
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"),
             "-subj", "/CN=localhost"],
            check=True, capture_output=True,
        )  # fmt: skip
        tls = ["--tls-cert", str(work / "cert.pem"), "--tls-key", str(work / "key.pem")]
        servers = {
            "plain": (serve, plain),
            "token": ([*serve, "--auth-token-file", str(work / "tokens")], bearer),
            "tls": ([*serve, *tls], plain),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        for round_number in range(args.rounds):
            for name, (command, script) in servers.items():
                print(f"round {round_number + 1}/{args.rounds}: {name}", file=sys.stderr)
                port = _free_port()
                with running(command, port, work) as process:
                    scheme = "https" if name == "tls" else "http"
                    _wait_ready(port, process, time.perf_counter(), scheme)
                    url = f"{scheme}://127.0.0.1:{port}/invocations"
                    _wrk(script, url, 16, 1)  # warm-up
                    runs[name].append({str(c): _wrk(script, url, c, args.seconds) for c in levels})
    print("| connections | server | req/s | p50 ms | p99 ms | failed |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for level in map(str, levels):
        for name, measured in runs.items():
            results = [run[level] for run in measured]
            rps = statistics.median(result["rps"] for result in results)
            p50 = statistics.median(result["p50"] for result in results) / 1000
            p99 = statistics.median(result["p99"] for result in results) / 1000
            failed = sum(result["failed"] for result in results)
            print(f"| {level} | {name} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {failed} |")


def _wait_ready(port: int, process: Any, began: float, scheme: str) -> None:
    context = ssl._create_unverified_context()  # the bench's own self-signed certificate
    while time.perf_counter() < began + 120:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            url = f"{scheme}://127.0.0.1:{port}/ping"
            with urllib.request.urlopen(url, timeout=1, context=context) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError("the server was not ready within 120 s")


def _save_model(work: Path) -> Path:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from infer_cli.core import Column, ModelCard, Signature, save_model

    columns = ["a", "b", "c", "d"]
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(2000, 4)), columns=columns)
    y = np.where(x["a"] + x["b"] - x["c"] > 0, "yes", "no")
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(x, y)
    card = ModelCard(
        task="classification",
        target="label",
        classes=["no", "yes"],
        signature=Signature(tuple(Column(name, "float") for name in columns)),
    )
    save_model(pipeline, card, work / "numeric")
    return work / "numeric"


if __name__ == "__main__":
    main()
