"""Bearer tokens over real sockets: 401 without one, 200 with one, rotation on SIGHUP,
liveness open, tokens never echoed nor logged, 401s counted, the banner's warning."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from infer_cli.core import load_model
from infer_cli.report import render_banner
from infer_cli.serve import ServeConfig, ServeOptions

from conftest import Server, run_infer_cli

ROW = json.dumps({"inputs": [[1.0, 2.0, 3.0, 4.0]]}).encode()
FIRST, SECOND, ROTATED, FROM_ENV = "first-t0ken", "second-t0ken", "rotated-t0ken", "env-t0ken"


def _ask(
    port: int, method: str, path: str, token: str | None = None, scheme: str = "Bearer"
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    connection.request(method, path, body=ROW if method == "POST" else None, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"{FIRST}\n\n  {SECOND}  \n")
    return path


def test_every_endpoint_but_liveness_needs_a_token(
    serve: Server, numeric_model: Path, token_file: Path
) -> None:
    _, port = serve(load_model(numeric_model), auth_token_file=str(token_file))
    for path in ("/ping", "/health", "/v2/health/live"):
        assert _ask(port, "GET", path)[0] == 200, path
    closed = [("POST", "/invocations"), ("GET", "/metrics"), ("GET", "/version"),
              ("GET", "/v2/health/ready"), ("GET", "/v2/models/numeric"),
              ("POST", "/v2/models/numeric/infer"), ("GET", "/nowhere")]  # fmt: skip
    for method, path in closed:
        for token, scheme in ((None, "Bearer"), ("wrong", "Bearer"), (FIRST, "Basic")):
            status, headers, body = _ask(port, method, path, token, scheme)
            assert status == 401, (method, path, token, scheme)
            assert headers["www-authenticate"] == "Bearer"
            assert headers["content-type"] == "application/json"
            document = json.loads(body)
            if path.startswith("/v2"):  # the Open Inference Protocol's error shape
                assert set(document) == {"error"}
            else:
                assert document["error_code"] == "UNAUTHENTICATED"
            assert b"wrong" not in body and FIRST.encode() not in body
    assert json.loads(_ask(port, "POST", "/invocations")[2])["message"] == (
        "this server needs 'Authorization: Bearer TOKEN'"
    )
    assert json.loads(_ask(port, "POST", "/invocations", "wrong")[2])["message"] == (
        "the bearer token is not accepted"
    )
    for token in (FIRST, SECOND):
        status, _, body = _ask(port, "POST", "/invocations", token)
        assert status == 200 and "predictions" in json.loads(body)
    assert _ask(port, "POST", "/invocations", FIRST, scheme="bearer")[0] == 200
    metrics = _ask(port, "GET", "/metrics", SECOND)[2].decode()
    assert re.search(r'infer_cli_requests_total\{code="401"\} 23\b', metrics), metrics


def test_without_a_token_every_endpoint_is_open(serve: Server, numeric_model: Path) -> None:
    _, port = serve(load_model(numeric_model))
    assert _ask(port, "POST", "/invocations")[0] == 200
    assert _ask(port, "GET", "/metrics")[0] == 200


def _start(*args: str | Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    executable = Path(sys.executable).with_name("infer-cli")
    process = subprocess.Popen(
        [str(executable), "serve", "-p", "0", *map(str, args)],
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    assert process.stderr is not None
    seen = []
    for raw in process.stderr:
        seen.append(raw.decode())
        found = re.search(r"http://127\.0\.0\.1:(\d+)/invocations", seen[-1])
        if found:
            return process, int(found.group(1))
    process.kill()
    raise AssertionError(f"the server did not start: {''.join(seen)}")


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.mark.parametrize("workers", [1, 2])
def test_tokens_rotate_on_sighup_without_a_restart(
    numeric_model: Path,
    token_file: Path,
    started: list[subprocess.Popen[bytes]],
    workers: int,
) -> None:
    env = {**os.environ, "INFER_CLI_AUTH_TOKEN": FROM_ENV}
    process, port = _start(
        "-m", numeric_model, "--auth-token-file", token_file, "--workers", str(workers), env=env
    )
    started.append(process)
    for token in (FIRST, SECOND, FROM_ENV):
        assert _ask(port, "POST", "/invocations", token)[0] == 200
    assert _ask(port, "POST", "/invocations", ROTATED)[0] == 401
    token_file.write_text(f"{ROTATED}\n")
    process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    # Every worker must have read the file again: each of several answers refuses FIRST.
    refused = 0
    while refused < 4 * workers and time.monotonic() < deadline:
        refused = refused + 1 if _ask(port, "POST", "/invocations", FIRST)[0] == 401 else 0
    assert refused == 4 * workers, "a worker still accepts the rotated-out token"
    for _ in range(4 * workers):
        assert _ask(port, "POST", "/invocations", ROTATED)[0] == 200
        assert _ask(port, "POST", "/invocations", FROM_ENV)[0] == 200
    # A file that can no longer be read leaves the tokens accepted before.
    token_file.unlink()
    process.send_signal(signal.SIGHUP)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert process.stderr is not None
    stderr = process.stderr.read().decode()
    for token in (FIRST, SECOND, ROTATED, FROM_ENV):
        assert token not in stderr
    assert re.search(r"\b401: [\d,]+", stderr), stderr


def test_a_token_file_that_cannot_be_read_or_is_empty_is_exit_2(
    numeric_model: Path, tmp_path: Path
) -> None:
    missing = run_infer_cli(
        "serve", "-m", numeric_model, "-p", "0", "--auth-token-file", tmp_path / "none"
    )
    assert missing.returncode == 2
    assert missing.stderr.decode() == (
        f"infer-cli: error: cannot read the auth token file {tmp_path / 'none'}: "
        "No such file or directory\n"
    )
    (tmp_path / "blank").write_text("\n  \n")
    blank = run_infer_cli(
        "serve", "-m", numeric_model, "-p", "0", "--auth-token-file", tmp_path / "blank"
    )
    assert blank.returncode == 2
    assert blank.stderr.decode() == (
        f"infer-cli: error: the auth token file {tmp_path / 'blank'} holds no token\n"
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", ""])
def test_a_token_silences_the_banners_warning_beyond_loopback(
    numeric_model: Path, token_file: Path, host: str
) -> None:
    # The banner is rendered without binding: a test listens on loopback only.
    output = io.StringIO()
    options = ServeOptions(auth_token_file=str(token_file))
    config = ServeConfig(numeric_model, host=host, port=5000, options=options)
    render_banner(Console(file=output, width=300), load_model(numeric_model), config, 1.0)
    text = output.getvalue()
    assert "warning" not in text
    assert f"bearer token from {token_file} (read again on SIGHUP)" in text
    assert FIRST not in text and SECOND not in text
