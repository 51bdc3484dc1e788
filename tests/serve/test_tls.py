"""HTTPS over real sockets with certificates made here by `openssl`: Python's ssl client and
`curl --cacert`, keep-alive, client certificates, a stalled handshake, plain HTTP refused,
and certificates that cannot be used stopping `serve` with exit 2."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infer_cli.core import load_model
from infer_cli.serve import ServeOptions
from infer_cli.serve.routes import App
from infer_cli.serve.server import PredictionServer
from infer_cli.serve.tls import server_context

from conftest import run_infer_cli

ROW = json.dumps({"inputs": [[1.0, 2.0, 3.0, 4.0]]}).encode()


@dataclass(frozen=True)
class Certificates:
    cert: Path
    key: Path
    other_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    where = tmp_path_factory.mktemp("tls")
    for name, subject in (("server", "/CN=localhost"), ("other", "/CN=other"), ("ca", "/CN=ca")):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-keyout", where / f"{name}.key", "-out", where / f"{name}.pem", "-subj", subject,
                 "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=client",
             "-keyout", where / "client.key", "-out", where / "client.csr")  # fmt: skip
    _openssl("x509", "-req", "-in", where / "client.csr", "-CA", where / "ca.pem",
             "-CAkey", where / "ca.key", "-CAcreateserial", "-days", "2",
             "-out", where / "client.pem")  # fmt: skip
    return Certificates(
        where / "server.pem", where / "server.key", where / "other.key",
        where / "ca.pem", where / "client.pem", where / "client.key",
    )  # fmt: skip


@pytest.fixture
def https(numeric_model: Path) -> Iterator[object]:
    servers: list[PredictionServer] = []
    model = load_model(numeric_model)

    def start(context: ssl.SSLContext, **options: object) -> int:
        app = App(ServeOptions(access_log=False, **options))  # type: ignore[arg-type]
        app.model = model
        server = PredictionServer(("127.0.0.1", 0), app, context)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _client(certificates: Certificates, with_certificate: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificates.cert))
    if with_certificate:
        context.load_cert_chain(certificates.client_cert, certificates.client_key)
    return context


def _post(connection: http.client.HTTPSConnection) -> tuple[int, dict[str, object]]:
    connection.request("POST", "/invocations", ROW, {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_python_ssl_client_is_served_with_keep_alive(
    https: object, certificates: Certificates
) -> None:
    port = https(server_context(str(certificates.cert), str(certificates.key)))  # type: ignore[operator]
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=_client(certificates), timeout=20
    )
    status, document = _post(connection)
    assert status == 200 and len(document["predictions"]) == 1  # type: ignore[arg-type]
    first = connection.sock
    for _ in range(3):
        assert _post(connection)[0] == 200
    assert connection.sock is first, "the connection was not kept alive"
    assert first.version() in ("TLSv1.2", "TLSv1.3")
    connection.close()


def test_a_large_body_arrives_whole_over_tls(https: object, certificates: Certificates) -> None:
    port = https(server_context(str(certificates.cert), str(certificates.key)))  # type: ignore[operator]
    rows = [[float(i), 2.0, 3.0, 4.0] for i in range(20_000)]
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=_client(certificates), timeout=60
    )
    body = json.dumps({"inputs": rows}).encode()
    connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    assert len(json.loads(response.read())["predictions"]) == 20_000
    connection.close()


def test_client_certificates_are_required_with_a_client_ca(
    https: object, certificates: Certificates
) -> None:
    context = server_context(
        str(certificates.cert), str(certificates.key), str(certificates.client_ca)
    )
    port = https(context)  # type: ignore[operator]
    with_one = http.client.HTTPSConnection(
        "127.0.0.1", port, context=_client(certificates, with_certificate=True), timeout=20
    )
    assert _post(with_one)[0] == 200
    with_one.close()
    without = http.client.HTTPSConnection(
        "127.0.0.1", port, context=_client(certificates), timeout=20
    )
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _post(without)
    without.close()


def test_a_stalled_handshake_is_closed_and_others_are_served(
    https: object, certificates: Certificates
) -> None:
    context = server_context(str(certificates.cert), str(certificates.key))
    port = https(context, read_timeout=0.3)  # type: ignore[operator]
    stalled = socket.create_connection(("127.0.0.1", port), timeout=20)
    half = socket.create_connection(("127.0.0.1", port), timeout=20)
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's first bytes
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=_client(certificates), timeout=20
    )
    assert _post(connection)[0] == 200  # the loop is not held by either
    connection.close()
    assert stalled.recv(1024) == b""  # closed by the server after --read-timeout
    assert half.recv(1024) == b""
    stalled.close()
    half.close()


def test_plain_http_on_the_tls_port_is_closed_and_serving_goes_on(
    https: object, certificates: Certificates
) -> None:
    port = https(server_context(str(certificates.cert), str(certificates.key)))  # type: ignore[operator]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as plain:
        plain.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        # The server closes it, with the request unread: an end of file or a reset.
        with contextlib.suppress(ConnectionResetError):
            while chunk := plain.recv(1024):
                received += chunk
        assert b"HTTP/1.1 200" not in received
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=_client(certificates), timeout=20
    )
    assert _post(connection)[0] == 200
    connection.close()


def test_serve_with_a_certificate_answers_curl(
    numeric_model: Path, certificates: Certificates
) -> None:
    executable = Path(sys.executable).with_name("infer-cli")
    process = subprocess.Popen(
        [str(executable), "serve", "-m", str(numeric_model), "-p", "0", "--no-access-log",
         "--tls-cert", str(certificates.cert), "--tls-key", str(certificates.key)],
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        port = 0
        for raw in process.stderr:
            found = re.search(r"https://127\.0\.0\.1:(\d+)/invocations", raw.decode())
            if found:
                port = int(found.group(1))
                break
        assert port, "no https address in the banner"
        answer = subprocess.run(
            ["curl", "-sS", "--cacert", str(certificates.cert), "-H",
             "Content-Type: application/json", "--data-binary", ROW.decode(),
             f"https://127.0.0.1:{port}/invocations",
             "--next", "--cacert", str(certificates.cert), f"https://127.0.0.1:{port}/ping"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        assert answer.returncode == 0, answer.stderr
        assert json.loads(answer.stdout.decode().strip())["predictions"] in (["no"], ["yes"])
        refused = subprocess.run(
            ["curl", "-sS", f"https://127.0.0.1:{port}/ping"], capture_output=True, timeout=60
        )
        assert refused.returncode == 60  # curl: the certificate is not trusted
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(30) == 0


def test_certificates_that_cannot_be_used_are_exit_2(
    numeric_model: Path, certificates: Certificates, tmp_path: Path
) -> None:
    def serve(*args: str | Path) -> tuple[int, str]:
        done = run_infer_cli("serve", "-m", numeric_model, "-p", "0", *args)
        return done.returncode, done.stderr.decode()

    cert, key = certificates.cert, certificates.key
    assert serve("--tls-cert", cert, "--tls-key", certificates.other_key) == (
        2, f"infer-cli: error: cannot use the TLS certificate {cert}: "
        f"the key {certificates.other_key} does not match it\n",
    )  # fmt: skip
    assert serve("--tls-cert", tmp_path / "none.pem", "--tls-key", key) == (
        2, f"infer-cli: error: cannot read the TLS certificate {tmp_path / 'none.pem'}: "
        "No such file or directory\n",
    )  # fmt: skip
    assert serve("--tls-cert", key, "--tls-key", cert) == (
        2, f"infer-cli: error: cannot use the TLS certificate {key}: not a PEM certificate "
        f"with {cert} a PEM private key\n",
    )  # fmt: skip
    assert serve("--tls-key", key) == (
        2, "infer-cli: error: --tls-key and --tls-client-ca need --tls-cert\n",
    )  # fmt: skip
