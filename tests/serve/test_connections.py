"""The server's HTTP/1.1 connection handling, over real sockets: pipelining, half-closed and
slow clients, `Expect: 100-continue`, HTTP/1.0, oversized heads, time limits, draining."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from infer_cli.core import Model, load_model
from infer_cli.serve import ServeOptions
from infer_cli.serve.errors import MalformedRequest
from infer_cli.serve.messages import parse_head
from infer_cli.serve.routes import App

from conftest import COLUMNS, Server, SlowEstimator, call, make_server


def _invocation(row: list[float], proba: bool = False) -> bytes:
    document: dict[str, Any] = {"inputs": [row]}
    if proba:
        document["params"] = {"proba": True}
    body = json.dumps(document).encode()
    return (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


class Replies:
    """Reads HTTP responses one at a time off a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def next(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", 0))
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), headers, body

    def closed(self) -> bool:
        return not self.buffer and self.sock.recv(65536) == b""

    def _more(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk


def _connect(port: int) -> tuple[socket.socket, Replies]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    return sock, Replies(sock)


def test_pipelined_requests_are_answered_in_order(serve: Server, numeric_model: Path) -> None:
    model = load_model(numeric_model)
    _, port = serve(model)
    rows = [[3.0, 2.0, -1.0, 0.0], [-3.0, -2.0, 1.0, 0.0]]
    expected = model.predict(pd.DataFrame(rows, columns=COLUMNS)).values.tolist()
    sock, replies = _connect(port)
    # Twice: the first time on the scoring thread, then scored on the loop's own thread,
    # whose replies let the next pipelined request through in the same turn.
    for _ in range(2):
        sock.sendall(_invocation(rows[0]) + b"GET /ping HTTP/1.1\r\n\r\n" + _invocation(rows[1]))
        first, ping, second = replies.next(), replies.next(), replies.next()
        assert (first[0], json.loads(first[2])) == (200, {"predictions": [expected[0]]})
        assert ping[0] == 200
        assert (second[0], json.loads(second[2])) == (200, {"predictions": [expected[1]]})
    sock.close()


def test_a_client_pipelining_many_requests_takes_turns_with_the_others(
    serve: Server, numeric_model: Path
) -> None:
    _, port = serve(load_model(numeric_model))
    flood, flood_replies = _connect(port)
    other, other_replies = _connect(port)
    for sock, replies in ((flood, flood_replies), (other, other_replies)):
        sock.sendall(_invocation([1.0, 2.0, 3.0, 4.0]))  # measured: later ones score at once
        assert replies.next()[0] == 200
    count = 2000
    flood.sendall(_invocation([1.0, 2.0, 3.0, 4.0]) * count)
    assert flood_replies.next()[0] == 200  # the server is working through the flood
    other.sendall(_invocation([4.0, 3.0, 2.0, 1.0]))
    assert other_replies.next()[0] == 200
    # Everything the flood was answered before that reply is in its socket by now: a request
    # or two, one a turn. Its pipelined requests answered all in one turn, as they once
    # were, it was every request the server had read of it (500 to 2,000 here).
    flood.setblocking(False)
    try:
        while True:
            flood_replies.buffer += flood.recv(1 << 20)
    except BlockingIOError:
        pass
    answered_before = 1 + flood_replies.buffer.count(b"HTTP/1.1 200")
    assert answered_before < 250, answered_before
    flood.setblocking(True)
    for _ in range(count - 1):
        assert flood_replies.next()[0] == 200
    flood.close()
    other.close()


def test_a_client_that_half_closes_after_its_request_still_gets_the_reply(
    serve: Server, numeric_model: Path
) -> None:
    _, port = serve(load_model(numeric_model))
    sock, replies = _connect(port)
    sock.sendall(_invocation([1.0, 2.0, 3.0, 4.0]))
    sock.shutdown(socket.SHUT_WR)
    status, _, body = replies.next()
    assert status == 200 and len(json.loads(body)["predictions"]) == 1
    # Whether the reply says "Connection: close" depends on whether the end of input was
    # read before the prediction was ready; either way the connection ends after it.
    assert replies.closed()
    sock.close()


def test_a_client_that_half_closes_after_pipelined_requests_gets_every_reply(
    numeric_model: Path,
) -> None:
    loaded = load_model(numeric_model)
    app = App(ServeOptions(access_log=False))
    # Slow enough that the half-close is read while the first prediction is being scored.
    app.model = Model(SlowEstimator(loaded.estimator, 0.2), loaded.card, loaded.path)
    server = make_server(app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sock, replies = _connect(server.server_address[1])
    rows = [[3.0, 2.0, -1.0, 0.0], [-3.0, -2.0, 1.0, 0.0]]
    sock.sendall(_invocation(rows[0]) + _invocation(rows[1]) + b"GET /ping HTTP/1.1\r\n\r\n")
    sock.shutdown(socket.SHUT_WR)
    answers = [replies.next() for _ in range(3)]
    expected = loaded.predict(pd.DataFrame(rows, columns=COLUMNS)).values.tolist()
    assert [json.loads(body)["predictions"] for _, _, body in answers[:2]] == [
        [expected[0]],
        [expected[1]],
    ]
    assert answers[2][0] == 200 and answers[2][1]["connection"] == "close"
    assert replies.closed()
    sock.close()
    server.shutdown()
    server.server_close()


def test_expect_100_continue_is_answered_before_the_body(
    serve: Server, numeric_model: Path
) -> None:
    _, port = serve(load_model(numeric_model))
    request = _invocation([1.0, 2.0, 3.0, 4.0])
    head, _, body = request.partition(b"\r\n\r\n")
    sock, replies = _connect(port)
    sock.sendall(head + b"\r\nExpect: 100-continue\r\n\r\n")
    assert replies.next()[0] == 100
    sock.sendall(body)
    status, _, answer = replies.next()
    assert status == 200 and len(json.loads(answer)["predictions"]) == 1
    sock.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"x" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /ping HTTP/1.1\r\n" + b"X-Filler: " + b"y" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /ping HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
        (b"POST /invocations HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        # A digit to str.isdigit() but not to int(), and more digits than int() reads.
        (b"POST /invocations HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", 400),
        (b"POST /invocations HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", 413),
    ],
)
def test_oversized_or_malformed_heads_get_their_status_and_a_closed_connection(
    serve: Server, numeric_model: Path, request_bytes: bytes, status: int
) -> None:
    _, port = serve(load_model(numeric_model))
    sock, replies = _connect(port)
    sock.sendall(request_bytes)
    got, headers, body = replies.next()
    assert got == status
    assert headers["connection"] == "close"
    assert json.loads(body)["error_code"] == "BAD_REQUEST"
    assert replies.closed()
    sock.close()


def test_http_1_0_closes_unless_keep_alive_is_asked_for(serve: Server, numeric_model: Path) -> None:
    _, port = serve(load_model(numeric_model))
    sock, replies = _connect(port)
    sock.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
    assert replies.next()[1]["connection"] == "close"
    assert replies.closed()
    sock.close()
    sock, replies = _connect(port)
    for asked in (b"keep-alive", b"Keep-Alive"):
        sock.sendall(b"GET /ping HTTP/1.0\r\nConnection: %s\r\n\r\n" % asked)
        status, headers, _ = replies.next()
        assert (status, headers["connection"]) == (200, "keep-alive")
    sock.close()


def test_control_characters_in_a_path_are_escaped_in_the_access_log(
    numeric_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = App(ServeOptions(access_log=True))
    app.model = load_model(numeric_model)
    server = make_server(app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sock, replies = _connect(server.server_address[1])
    sock.sendall(b"GET /\x1b[2Jx HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert replies.next()[0] == 404
    sock.close()
    server.shutdown()
    server.server_close()
    logged = capsys.readouterr().err
    assert '"GET /\\x1b[2Jx" 404' in logged and "\x1b" not in logged
    # The date as well as the time of day, as the Common Log Format writes them.
    assert re.search(r' - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET ', logged)


def test_an_idle_connection_is_closed_after_the_read_timeout(
    serve: Server, numeric_model: Path
) -> None:
    _, port = serve(load_model(numeric_model), read_timeout=0.3)
    never_spoke, replies = _connect(port)
    assert replies.closed()
    kept_alive, replies = _connect(port)
    kept_alive.sendall(b"GET /ping HTTP/1.1\r\n\r\n")
    assert replies.next()[0] == 200
    assert replies.closed()
    never_spoke.close()
    kept_alive.close()


def test_a_client_slow_to_read_a_large_reply_holds_up_no_one(
    serve: Server, numeric_model: Path
) -> None:
    model = load_model(numeric_model)
    _, port = serve(model)
    rows = np.random.default_rng(3).normal(size=(40_000, 4)).round(3)
    body = json.dumps({"inputs": rows.tolist(), "params": {"proba": True}}).encode()
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(20)
    slow.connect(("127.0.0.1", port))
    slow.sendall(
        b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    time.sleep(0.5)  # the reply, megabytes long, is now stuck in the server's send buffer
    for _ in range(3):
        assert call(port, "GET", "/ping")[0] == 200
    status, _, answer = Replies(slow).next()
    expected = model.predict(pd.DataFrame(rows, columns=COLUMNS), proba=True)
    document = json.loads(answer)
    assert status == 200 and len(answer) > 1_000_000
    assert document["predictions"] == expected.values.tolist()
    slow.close()


def test_hundreds_of_connections_at_once_each_get_their_own_rows(
    serve: Server, numeric_model: Path
) -> None:
    model = load_model(numeric_model)
    app, port = serve(model)
    rows = np.random.default_rng(4).normal(size=(200, 4)).round(4)
    expected = model.predict(pd.DataFrame(rows, columns=COLUMNS), proba=True).probabilities
    sockets = [_connect(port) for _ in rows]
    for _ in range(2):
        for (sock, _), row in zip(sockets, rows, strict=True):
            sock.sendall(_invocation(row.tolist(), proba=True))
        for index, (_, replies) in enumerate(sockets):
            status, _, body = replies.next()
            assert status == 200, body
            assert np.allclose(json.loads(body)["probabilities"], [expected[index]])
    assert app.stats.requests == 2 * len(rows)
    assert app.stats.batches < len(rows), "requests read together were not batched"
    for sock, _ in sockets:
        sock.close()


def test_shutdown_answers_the_request_in_flight_and_refuses_new_ones(
    numeric_model: Path,
) -> None:
    loaded = load_model(numeric_model)
    app = App(ServeOptions(access_log=False))
    slow = SlowEstimator(loaded.estimator, 0.5)
    app.model = Model(slow, loaded.card, loaded.path)
    server = make_server(app)
    port = server.server_address[1]
    loop = threading.Thread(target=server.serve_forever, daemon=True)
    loop.start()
    idle, idle_replies = _connect(port)
    busy, replies = _connect(port)
    busy.sendall(_invocation([1.0, 2.0, 3.0, 4.0]))
    assert slow.predicting.wait(10)
    stopper = threading.Thread(target=server.shutdown)
    stopper.start()
    status, headers, body = replies.next()
    assert (status, headers["connection"]) == (200, "close")
    assert len(json.loads(body)["predictions"]) == 1
    assert idle_replies.closed()
    stopper.join(10)
    loop.join(10)
    assert not loop.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    server.server_close()
    idle.close()
    busy.close()


def test_a_body_over_the_limit_gets_its_413_not_a_reset(serve: Server, numeric_model: Path) -> None:
    _, port = serve(load_model(numeric_model), max_body_bytes=1000)
    body = b'{"inputs": [' + b"[1, 2, 3, 4], " * 400_000 + b"[1, 2, 3, 4]]}"
    for _ in range(3):
        status, headers, answer = call(port, "POST", "/invocations", body)
        assert (status, headers["connection"]) == (413, "close")
        assert "at most 1000" in json.loads(answer)["message"]


def test_a_client_stalled_mid_request_does_not_hold_back_a_lone_prediction(
    serve: Server, numeric_model: Path
) -> None:
    # A batch may wait for requests still arriving, here up to a minute: one that stalls
    # must stop counting as arriving, or every prediction would wait the minute out.
    _, port = serve(load_model(numeric_model), max_batch_delay=60.0)
    stalled_head, _ = _connect(port)
    stalled_head.sendall(b"POST /invocat")
    stalled_body, _ = _connect(port)
    stalled_body.sendall(_invocation([1.0, 2.0, 3.0, 4.0])[:-5])
    time.sleep(0.3)
    for _ in range(3):
        status, _, body = call(port, "POST", "/invocations", b'{"inputs": [[1, 2, 3, 4]]}')
        assert status == 200 and len(json.loads(body)["predictions"]) == 1
    stalled_head.close()
    stalled_body.close()


def test_parse_head_reads_bare_line_feeds_and_rejects_what_is_not_http() -> None:
    head = parse_head(b"POST /invocations HTTP/1.1\nContent-Type: text/csv\nX-Empty:")
    assert (head.method, head.path, head.version) == ("POST", "/invocations", "HTTP/1.1")
    assert head.headers["content-type"] == "text/csv" and head.headers["x-empty"] == ""
    assert head.keep_alive
    assert not parse_head(b"GET / HTTP/1.1\r\nConnection: close").keep_alive
    bad_heads = (
        b"GET /",
        b"GET / HTTP/2.0",
        b"GET / HTTP/1.1\r\n: no name",
        b"POST / HTTP/1.1\r\nContent-Length : 5",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 50",
    )
    for bad in bad_heads:
        with pytest.raises(MalformedRequest):
            parse_head(bad)
