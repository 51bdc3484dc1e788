"""The prediction server's HTTP layer: routes, the one place errors become statuses, and a
thin `BaseHTTPRequestHandler` over the pure `App.handle(request) -> Reply`.

Endpoints follow MLflow's scoring server (`/ping`, `/health`, `/version`, `/invocations`)
and the Open Inference Protocol V2 (`/v2/...`); `GET /metrics` is Prometheus text.
"""

from __future__ import annotations

import _thread
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from . import __version__, protocol
from .batcher import Batcher
from .errors import (
    ClientTimeout,
    DataError,
    InferError,
    LengthRequired,
    MethodNotAllowed,
    NotFound,
    NotReady,
    PayloadTooLarge,
    RequestTimeout,
)
from .serve_log import ACCESS_LOG, http_date, log, time_of_day
from .serve_stats import ServeStats

if TYPE_CHECKING:
    from .model import Model, Predictions, Prepared

JSON = "application/json"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in HTTPStatus}
ACCEPTS_PER_WAKEUP = 64
Submit = Callable[[Any, int, "float | None"], Any]


@dataclass(frozen=True)
class ServeOptions:
    """How the server behaves; the `serve` command's options."""

    max_body_bytes: int = 64 * 1024 * 1024
    """Largest request body accepted; larger ones are answered 413."""
    request_timeout: float = 30.0
    """Seconds a prediction may wait and run before it is answered 504."""
    read_timeout: float = 10.0
    """Seconds a client may take to send a request, and an idle connection may stay open."""
    max_batch_rows: int = 64
    """Most rows scored in one model call."""
    max_batch_delay: float = 0.002
    """Longest a batch waits for requests already being read."""
    access_log: bool = True
    """Write one line per request on stderr."""


class Headers(dict[str, str]):
    """Request headers; names are matched without regard to case."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        super().__init__({name.lower(): value for name, value in (items or {}).items()})

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


@dataclass(frozen=True)
class Request:
    """One HTTP request, already read off the socket."""

    method: str
    path: str
    headers: Headers
    body: bytes = b""


@dataclass(frozen=True)
class Reply:
    """One HTTP response."""

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Scoring:
    model: Model
    prepared: Prepared
    proba: bool


class App:
    """The server's state and routes: the model served, its batcher and its counts."""

    def __init__(self, options: ServeOptions | None = None, stats: ServeStats | None = None):
        self.options = options or ServeOptions()
        self.stats = stats or ServeStats()
        self.model: Model | None = None
        self.draining = False
        self.batcher: Batcher[_Scoring, tuple[Any, Any]] = Batcher(
            self._score,
            max_rows=self.options.max_batch_rows,
            max_delay=self.options.max_batch_delay,
        )
        self._in_flight = 0
        self._idle = threading.Condition()

    @property
    def ready(self) -> bool:
        return self.model is not None

    def handle(self, request: Request, submit: Submit | None = None) -> Reply:
        """Answer one request; every error becomes its status and JSON body here."""
        try:
            return self._route(request, submit or self.batcher.submit)
        except Exception as exc:
            return error_reply(exc, request)

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a request as being answered, so that a drain waits for it."""
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being answered; False if some still were at `timeout`."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def _route(self, request: Request, submit: Submit) -> Reply:
        path = request.path.split("?", 1)[0]
        method = "GET" if request.method == "HEAD" else request.method
        if path in ("/ping", "/health"):
            _allow(method, "GET")
            self._current()
            return Reply(200, b"\n")
        if path == "/invocations":
            _allow(method, "POST")
            return self._invocations(request, submit)
        if path == "/version":
            _allow(method, "GET")
            return Reply(200, __version__.encode(), "text/plain; charset=utf-8")
        if path == "/metrics":
            _allow(method, "GET")
            model = self.model
            text = self.stats.prometheus(
                model.card.sha256 if model else "", str(model.path) if model else "", self.ready
            )
            return Reply(200, text.encode(), PROMETHEUS)
        if path.startswith("/v2"):
            return self._v2(path, method, request, submit)
        raise NotFound(f"no endpoint at {path} (try POST /invocations)")

    def _v2(self, path: str, method: str, request: Request, submit: Submit) -> Reply:
        if path in ("/v2", "/v2/"):
            _allow(method, "GET")
            return _json(200, {"name": "infer-cli", "version": __version__, "extensions": []})
        if path == "/v2/health/live":
            _allow(method, "GET")
            return _json(200, {"live": True})
        if path == "/v2/health/ready":
            _allow(method, "GET")
            return _json(200 if self.ready else 503, {"ready": self.ready})
        parts = path.split("/")
        if len(parts) < 4 or parts[2] != "models" or len(parts) > 5:
            raise NotFound(f"no endpoint at {path}")
        model = self._current()
        if parts[3] != model_name(model):
            raise NotFound(f"no model named '{parts[3]}' (this server has '{model_name(model)}')")
        action = parts[4] if len(parts) == 5 else ""
        if action == "":
            _allow(method, "GET")
            return _json(200, model_metadata(model))
        if action == "ready":
            _allow(method, "GET")
            return _json(200, {"name": model_name(model), "ready": True})
        if action == "infer":
            _allow(method, "POST")
            return self._infer(request, submit)
        raise NotFound(f"no endpoint at {path}")

    def _current(self) -> Model:
        model = self.model
        if model is None:
            raise NotReady("the model is still loading; try again shortly")
        return model

    def _invocations(self, request: Request, submit: Submit) -> Reply:
        model = self._current()
        invocation = protocol.decode_invocation(
            request.body, request.headers.get("Content-Type"), model.signature.names
        )
        predictions = self._predict(model, invocation.payload, invocation.proba, submit)
        body = protocol.encode_predictions(
            predictions[0], predictions[1], model.card.classes if invocation.proba else None
        )
        return Reply(200, body)

    def _infer(self, request: Request, submit: Submit) -> Reply:
        model = self._current()
        infer = protocol.decode_infer(
            request.body, request.headers.get("Content-Type"), model.signature.names
        )
        proba = "predict_proba" in infer.outputs
        values, probabilities = self._predict(model, infer.payload, proba, submit)
        body = protocol.encode_infer_response(
            infer,
            model_name(model),
            model_version(model),
            values,
            probabilities,
            model.card.classes,
        )
        return Reply(200, body)

    def _predict(
        self, model: Model, payload: protocol.Payload, proba: bool, submit: Submit
    ) -> tuple[Any, Any]:
        if proba and not model.can_predict_proba:
            raise DataError("this model does not give class probabilities")
        if not payload.rows:
            raise DataError("the request holds no rows")
        prepared = model.prepare(payload.columns, payload.frame)
        scoring = _Scoring(model, prepared, proba)
        return submit(scoring, prepared.rows, self.options.request_timeout)

    def _score(self, items: list[_Scoring]) -> list[tuple[Any, Any]]:
        """Score a batch: one estimator call per (model, proba) group; split rows back out."""
        results: list[tuple[Any, Any] | None] = [None] * len(items)
        groups: dict[tuple[int, bool], list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault((id(item.model), item.proba), []).append(index)
        for indexes in groups.values():
            first = items[indexes[0]]
            predictions: Predictions = first.model.predict_many(
                [items[i].prepared for i in indexes], proba=first.proba
            )
            start = 0
            for i in indexes:
                stop = start + items[i].prepared.rows
                probabilities = predictions.probabilities
                results[i] = (
                    predictions.values[start:stop],
                    None if probabilities is None else probabilities[start:stop],
                )
                start = stop
            self.stats.record_batch(start)
        return results  # type: ignore[return-value]


def model_name(model: Model) -> str:
    """The name a model is served under in V2 paths: its directory or file name."""
    return model.path.stem if model.path.is_file() else model.path.name or "model"


def model_version(model: Model) -> str:
    return model.card.sha256[:12]


def model_metadata(model: Model) -> dict[str, Any]:
    """V2 model metadata: the input columns as tensors, and the outputs."""
    return protocol.model_metadata(
        model_name(model),
        model_version(model),
        [(column.name, column.dtype) for column in model.signature.inputs],
        model.card.classes if model.is_classifier else None,
        model.can_predict_proba,
    )


def error_reply(exc: BaseException, request: Request | None = None) -> Reply:
    """The one place an exception becomes an HTTP status and the JSON error body.

    Client errors, a model still loading and a timeout are answered; a model failing or a
    bug is also logged, and a bug's traceback stays in the log, never in the reply.
    """
    if isinstance(exc, InferError):
        headers: tuple[tuple[str, str], ...] = ()
        if isinstance(exc, MethodNotAllowed):
            headers = (("Allow", ", ".join(exc.allowed)),)
        if exc.http_status >= 500 and not isinstance(exc, (NotReady, RequestTimeout)):
            log(f"error{_where(request)}: {exc.message}")
        message = protocol.client_message(exc)
        return Reply(exc.http_status, protocol.encode_error(exc.error_code, message), JSON, headers)
    log(f"internal error{_where(request)}:\n{''.join(traceback.format_exception(exc)).rstrip()}")
    return Reply(500, protocol.encode_error("INTERNAL_ERROR", "internal server error (logged)"))


def _where(request: Request | None) -> str:
    return f" ({request.method} {request.path})" if request else ""


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        methods = ("GET", "HEAD") if allowed == "GET" else (allowed,)
        raise MethodNotAllowed(f"{method} is not allowed here (use {allowed})", methods)


def _json(status: int, document: Any) -> Reply:
    return Reply(status, protocol.encode_json(document))


class _Handler(BaseHTTPRequestHandler):
    """Reads one request at a time off a keep-alive connection and writes each reply in a
    single send (with TCP_NODELAY, so a small reply never waits for a delayed ACK)."""

    protocol_version = "HTTP/1.1"
    server_version = f"infer-cli/{__version__}"
    server: PredictionServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.app.options.read_timeout)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        began = time.perf_counter()
        try:
            if not self.parse_request():
                return
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        app = self.server.app
        with app.in_flight():
            reply = self._answer(app)
            if app.draining:
                self.close_connection = True
            self._send(reply)
        elapsed = time.perf_counter() - began
        app.stats.record(reply.status, elapsed)
        if app.options.access_log:
            ACCESS_LOG.add(
                f'{self.client_address[0]} - [{time_of_day()}] "{self.command} {self.path}" '
                f"{reply.status} {len(reply.body)} {elapsed * 1000:.2f}ms"
            )

    def parse_request(self) -> bool:
        """The request line and headers, without http.server's email-parser headers (a third
        of the per-request cost of a small prediction)."""
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = line
        self.request_version = "HTTP/1.0"
        self.close_connection = True
        parts = line.split()
        if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.send_error(HTTPStatus.BAD_REQUEST, f"bad request line {line[:80]!r}")
            return False
        self.command, self.path, self.request_version = parts
        headers = Headers()
        for _ in range(100):
            raw = self.rfile.readline(65537)
            if len(raw) > 65536:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "header line too long")
                return False
            if raw in (b"\r\n", b"\n", b""):
                break
            name, colon, value = str(raw, "iso-8859-1").partition(":")
            if not colon or not name.strip():
                self.send_error(HTTPStatus.BAD_REQUEST, "malformed header line")
                return False
            headers[name.strip().lower()] = value.strip()
        else:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers")
            return False
        self.headers = headers  # type: ignore[assignment]
        connection = headers.get("connection", "").lower()
        self.close_connection = self.request_version != "HTTP/1.1" or "close" in connection
        if "keep-alive" in connection:
            self.close_connection = False
        if (
            headers.get("expect", "").lower() == "100-continue"
            and self.request_version == "HTTP/1.1"
        ):
            return self.handle_expect_100()
        return True

    def _answer(self, app: App) -> Reply:
        try:
            body = self._read_body(app.options)
        except Exception as exc:
            self.close_connection = True
            return error_reply(exc)
        request = Request(self.command, self.path, self.headers, body)  # type: ignore[arg-type]
        # Announced once the body is in, so a slow client never holds a batch back.
        arriving = app.batcher.arriving() if body and app.ready else nullcontext()
        with arriving as submit:
            return app.handle(request, submit)

    def _read_body(self, options: ServeOptions) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            if self.command in ("POST", "PUT", "PATCH") or self.headers.get("Transfer-Encoding"):
                raise LengthRequired("send the body with a Content-Length header")
            return b""
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError
        except ValueError:
            raise DataError(f"invalid Content-Length '{length_header}'") from None
        if length > options.max_body_bytes:
            raise PayloadTooLarge(
                f"the body is {length} bytes; this server takes at most {options.max_body_bytes}"
            )
        return self._read_exactly(length, options.read_timeout)

    def _read_exactly(self, length: int, limit: float) -> bytes:
        # A socket timeout bounds each read; the deadline bounds a body that trickles in.
        deadline = time.monotonic() + limit
        chunks = []
        remaining = length
        try:
            while remaining:
                chunk = self.rfile.read1(min(remaining, 1 << 20))
                if not chunk:
                    raise ClientTimeout("the connection closed before the whole body arrived")
                chunks.append(chunk)
                remaining -= len(chunk)
                if remaining and time.monotonic() > deadline:
                    raise TimeoutError
        except TimeoutError:
            raise ClientTimeout(f"the body did not arrive within {limit:g} s") from None
        return b"".join(chunks)

    def _send(self, reply: Reply) -> None:
        head = [
            _STATUS_LINES.get(reply.status, f"HTTP/1.1 {reply.status} Unknown\r\n"),
            f"Server: {self.server_version}\r\nDate: {http_date()}\r\n"
            f"Content-Type: {reply.content_type}\r\nContent-Length: {len(reply.body)}\r\n",
        ]
        head += [f"{name}: {value}\r\n" for name, value in reply.headers]
        if self.close_connection:
            head.append("Connection: close\r\n")
        head.append("\r\n")
        payload = "".join(head).encode("latin-1")
        if getattr(self, "command", None) != "HEAD":
            payload += reply.body
        try:
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A request http.server cannot parse: the same JSON error body, and the connection
        closed, since where the next request would start is unknown."""
        self.close_connection = True
        status = HTTPStatus(code)
        self._send(
            Reply(status.value, protocol.encode_error("BAD_REQUEST", message or status.phrase))
        )
        if self.server.app.options.access_log:
            log(f"{self.client_address[0]} - rejected: {status.value} {message or status.phrase}")

    def log_message(self, format: str, *args: Any) -> None:
        # Malformed requests rejected by http.server itself; answered ones have the access log.
        if self.server.app.options.access_log:
            log(f"{self.client_address[0]} - {format % args}")


class PredictionServer(ThreadingHTTPServer):
    """A thread per connection; sockets closed on exit without waiting for idle clients."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App, bind: bool = True) -> None:
        self.app = app
        super().__init__(address, _Handler, bind_and_activate=bind)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can stall on a bad resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def server_activate(self) -> None:
        super().server_activate()
        # Workers share this socket: one that loses the race for a connection must not block.
        self.socket.setblocking(False)

    def _handle_request_noblock(self) -> None:
        # Accept every waiting connection per wake-up, not one: when hundreds of clients
        # connect at once, the others would wait behind busy threads for the lock.
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                connection, client_address = self.get_request()
            except OSError:
                return
            try:
                self.process_request(connection, client_address)
            except Exception:
                self.handle_error(connection, client_address)
                self.shutdown_request(connection)

    def process_request(self, request: Any, client_address: Any) -> None:
        # threading.Thread.start() waits until the new thread runs, which under load means
        # waiting for the interpreter lock; a bare thread starts without holding up accepts.
        _thread.start_new_thread(self.process_request_thread, (request, client_address))

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return
        log(f"internal error serving {client_address[0]}:\n{traceback.format_exc().rstrip()}")


def make_server(app: App, host: str = "127.0.0.1", port: int = 0) -> PredictionServer:
    """A bound, listening server for `app`; run it with `serve_forever()` (port 0: any free)."""
    return PredictionServer((host, port), app)
