"""The prediction server's endpoints, with no sockets in sight.

`App.route(request)` answers at once what needs no model call and turns a prediction
request into a `Job`; `App.answer(jobs)` decodes a batch of jobs, scores them with one
estimator call per model and output kind, and encodes each caller's own rows back.
`error_reply` is the one place an exception becomes an HTTP status and a JSON body.

Endpoints follow MLflow's scoring server (`/ping`, `/health`, `/version`, `/invocations`)
and the Open Inference Protocol V2 (`/v2/...`); `GET /metrics` is Prometheus text.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import DataError, InferError, SchemaError
from . import protocol, tensors
from .access_log import log
from .auth import Tokens
from .batcher import split_by_rows
from .drift import DriftMonitor
from .errors import MethodNotAllowed, NotFound, NotReady, RequestTimeout, Unauthorized
from .messages import JSON, Reply, Request, request_id
from .options import ServeOptions
from .payloads import Limits, Payload
from .prediction_log import LogEntry, PredictionLog
from .stats import ServeStats

if TYPE_CHECKING:
    from ..core.model import Model, Predictions, Prepared
    from ..core.threshold import Decision

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
HEADER_LENGTH = "Inference-Header-Content-Length"
"""The binary tensor data extension's header: how many bytes of a V2 body are its JSON."""
FIRST_PART_ROWS = 4096
"""A request of more rows is scored in parts, each a turn of the batcher, so that small
requests arriving meanwhile are answered between them instead of after the whole."""
MIN_PART_ROWS = 1024
PART_SECONDS = 0.02
"""About how long each part of a large request holds the scoring thread."""
TEXT_PER_BODY_BYTE = 8
"""How many bytes of text a Parquet body may decode to per byte it may hold."""


@dataclass(eq=False)
class Job:
    """A prediction request waiting for the model it was routed to."""

    request: Request
    model: Model
    infer: bool
    """An Open Inference Protocol request, rather than MLflow's `/invocations`."""
    parts: _Parts | None = None
    """How far a large request, scored in parts, has come."""
    request_id: str = ""
    """The id its replies carry (`X-Request-Id`) and its rows are logged under."""

    def __post_init__(self) -> None:
        self.request_id = self.request_id or request_id(self.request.headers)


@dataclass(frozen=True)
class _Writer:
    """How a request's reply is written: its predictions a part at a time (V2 writes the
    probabilities row-major, `flat`, and the outputs named in `binary` as raw bytes), then
    the reply around the parts."""

    flat: bool
    body: Callable[[list[protocol.Part]], Reply]
    binary: frozenset[str] = frozenset()

    def part(self, values: Any, probabilities: Any) -> protocol.Part:
        return protocol.encode_part(values, probabilities, flat=self.flat, binary=self.binary)

    def encode(self, values: Any, probabilities: Any) -> Reply:
        return self.body([self.part(values, probabilities)])


@dataclass(eq=False)
class _Decoded:
    model: Model
    payload: Payload
    proba: bool
    writer: _Writer
    decision: Decision | None = None


@dataclass(eq=False)
class _Parts:
    """A request of more than FIRST_PART_ROWS rows, scored a part per turn of the batcher
    and its reply written likewise, so that no turn takes long."""

    decoded: _Decoded
    done: int = 0
    size: int = 0
    written: list[protocol.Part] = field(default_factory=list)
    logged: list[LogEntry] = field(default_factory=list)


@dataclass(eq=False)
class _Scoring:
    index: int
    model: Model
    prepared: Prepared
    proba: bool
    writer: _Writer
    decision: Decision | None = None
    payload: Payload | None = None

    @property
    def needs_proba(self) -> bool:
        """Whether its rows need the class probabilities: asked for, or to apply a threshold."""
        return self.proba or self.decision is not None

    def labelled(self, values: Any, probabilities: Any) -> tuple[Any, Any]:
        """Its rows' labels (by its threshold, if it has one) and the probabilities it asked for."""
        return _labelled(values, probabilities, self.proba, self.decision)


class App:
    """The server's state and routes: the model served and its counts."""

    def __init__(self, options: ServeOptions | None = None, stats: ServeStats | None = None):
        self.options = options or ServeOptions()
        self.stats = stats or ServeStats()
        self.limits = Limits(
            rows=self.options.max_rows,
            columns=self.options.max_columns,
            text_bytes=TEXT_PER_BODY_BYTE * self.options.max_body_bytes,
            every_column=bool(self.options.log_predictions),
        )
        self.model: Model | None = None
        self.drift = DriftMonitor(self.options.drift_window, self.options.profile)
        self.tokens = Tokens(self.options.auth_token_file, self.options.auth_token)
        self.prediction_log = PredictionLog.open(
            self.options, self.stats, lambda job: (model_name(job.model), model_version(job.model))
        )

    def close(self) -> None:
        """Write what the prediction log holds, once the server has stopped answering."""
        if self.prediction_log is not None:
            self.prediction_log.close()

    @property
    def ready(self) -> bool:
        return self.model is not None

    def route(self, request: Request) -> Reply | Job:
        """The reply to a request that needs no model call, or the job that will score it."""
        try:
            return self._route(request)
        except Exception as exc:
            return error_reply(exc, request)

    def answer(self, jobs: list[Job]) -> list[Reply | None]:
        """Score a batch of jobs: one reply each, an error reply for a job whose part failed,
        and None for a large request with parts still to score (see `FIRST_PART_ROWS`)."""
        replies: list[Reply | None] = [None] * len(jobs)
        groups: dict[int, list[_Scoring]] = {}
        large: list[int] = []
        for index, job in enumerate(jobs):
            try:
                if job.parts is None:
                    decoded = self._decode(job)
                    if decoded.payload.rows <= FIRST_PART_ROWS:
                        scoring = _prepare(index, decoded)
                        # Probabilities and thresholds are applied per request after the model
                        # call, so every request for a model shares it, whatever it asks.
                        groups.setdefault(id(scoring.model), []).append(scoring)
                        continue
                    job.parts = _Parts(decoded, size=FIRST_PART_ROWS)
                large.append(index)
            except Exception as exc:
                replies[index] = error_reply(exc, job.request)
        for group in groups.values():
            rows = self.options.max_batch_rows
            for call in split_by_rows(group, lambda scoring: scoring.prepared.rows, rows):
                for scoring, reply in self._score(call, jobs):
                    replies[scoring.index] = reply
        for index in large:
            parts = jobs[index].parts
            assert parts is not None
            try:
                replies[index] = self._score_part(parts, jobs[index])
            except Exception as exc:
                replies[index] = error_reply(exc, jobs[index].request)
        return replies

    def _route(self, request: Request) -> Reply | Job:
        path = request.path.split("?", 1)[0]
        if self.tokens.required:
            self.tokens.check(path, request.headers.get("authorization"))
        method = "GET" if request.method == "HEAD" else request.method
        if path in ("/ping", "/health"):
            _allow(method, "GET")
            self._current()
            return Reply(200, b"\n")
        if path == "/invocations":
            _allow(method, "POST")
            return Job(request, self._current(), infer=False)
        if path == "/version":
            _allow(method, "GET")
            # The body stays MLflow's (the server's version); the model's is in a header.
            registry = self.model.card.source.get("registry") if self.model else None
            named = (("X-Model-Version", registry["resolved"]),) if registry else ()
            return Reply(200, __version__.encode(), "text/plain; charset=utf-8", named)
        if path == "/metrics":
            _allow(method, "GET")
            model = self.model
            text = self.stats.prometheus(
                model.card.sha256 if model else "",
                str(model.path) if model else "",
                self.ready,
                registry=model.card.source.get("registry") if model else None,
            )
            text += self.drift.prometheus(model, model_name(model) if model else "")
            if self.prediction_log is not None:
                text += self.stats.prediction_log_prometheus()
            return Reply(200, text.encode(), PROMETHEUS)
        if path == "/drift":
            _allow(method, "GET")
            model = self._current()
            return _json(200, self.drift.report(model, model_name(model)))
        if path.startswith("/v2"):
            return self._v2(path, method, request)
        raise NotFound(f"no endpoint at {path} (try POST /invocations)")

    def _v2(self, path: str, method: str, request: Request) -> Reply | Job:
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
        if len(parts) < 4 or parts[2] != "models":
            raise NotFound(f"no endpoint at {path}")
        model = self._current()
        if parts[3] != model_name(model):
            raise NotFound(f"no model named '{parts[3]}' (this server has '{model_name(model)}')")
        if len(parts) >= 6 and parts[4] == "versions":
            if parts[5] != model_version(model):
                raise NotFound(
                    f"model '{parts[3]}' has no version '{parts[5]}' "
                    f"(this server has '{model_version(model)}')"
                )
            del parts[4:6]
        if len(parts) > 5:
            raise NotFound(f"no endpoint at {path}")
        action = parts[4] if len(parts) == 5 else ""
        if action == "":
            _allow(method, "GET")
            return _json(200, model_metadata(model))
        if action == "ready":
            _allow(method, "GET")
            return _json(200, {"name": model_name(model), "ready": True})
        if action == "infer":
            _allow(method, "POST")
            return Job(request, model, infer=True)
        raise NotFound(f"no endpoint at {path}")

    def _current(self) -> Model:
        model = self.model
        if model is None:
            raise NotReady("the model is still loading; try again shortly")
        return model

    def _decode(self, job: Job) -> _Decoded:
        model, request = job.model, job.request
        content_type = request.headers.get("Content-Type")
        if job.infer:
            infer = protocol.decode_infer(
                request.body,
                content_type,
                model.signature.names,
                self.limits,
                request.headers.get(HEADER_LENGTH),
            )
            payload, proba = infer.payload, "predict_proba" in infer.outputs
            name, version, classes = model_name(model), model_version(model), model.card.classes
            decision = self._decision(model, infer.threshold, "parameters: 'threshold'")
            threshold = None if decision is None else decision.threshold

            def body(parts: list[protocol.Part]) -> Reply:
                header, binary = protocol.infer_body(
                    infer, name, version, parts, classes, threshold
                )
                if not binary:
                    return Reply(200, header)
                length = ((HEADER_LENGTH, str(len(header))),)
                return Reply(200, header + binary, protocol.BINARY_TYPE, length)

            writer = _Writer(flat=True, body=body, binary=infer.binary)

        else:
            invocation = protocol.decode_invocation(
                request.body,
                content_type,
                model.signature.names,
                self.limits,
                model.signature.positional,
            )
            payload, proba = invocation.payload, invocation.proba
            classes = model.card.classes if proba else None
            decision = self._decision(model, invocation.threshold, "params: 'threshold'")
            threshold = None if decision is None else decision.threshold

            def body(parts: list[protocol.Part]) -> Reply:
                return Reply(200, protocol.predictions_body(parts, classes, threshold))

            writer = _Writer(flat=False, body=body)

        if proba and not model.can_predict_proba:
            raise DataError("this model does not give class probabilities")
        if not payload.rows:
            raise DataError("the request holds no rows")
        return _Decoded(model, payload, proba, writer, decision)

    def _decision(self, model: Model, requested: Any, name: str) -> Decision | None:
        """The request's threshold, else the server's (`serve --threshold`), else the one
        saved in the model's card, else None."""
        if requested is not None:
            return model.decision(requested, name=name, origin="the request")
        return model.decision(self.options.threshold, origin="serve --threshold")

    def _score_part(self, parts: _Parts, job: Job) -> Reply | None:
        """Score the next part of a large request; its reply once the last part is scored.

        Parts are sized to take about PART_SECONDS each, from how fast the last one went.
        """
        decoded, start = parts.decoded, parts.done
        payload, model = decoded.payload, decoded.model
        stop = min(start + parts.size, payload.rows)
        began = time.perf_counter()
        try:
            part = payload.part(start, stop)
            prepared = model.prepare(part.columns, part.frame)
        except SchemaError as error:
            row = None if error.row is None else error.row + start
            raise SchemaError(error.reason, column=error.column, row=row) from error
        needs_proba = decoded.proba or decoded.decision is not None
        predictions = model.predict_many([prepared], proba=needs_proba)
        self.stats.record_batch(prepared.rows)
        self.drift.record(model, [prepared], predictions.values)
        values, probabilities = _labelled(
            predictions.values, predictions.probabilities, decoded.proba, decoded.decision
        )
        parts.written.append(decoded.writer.part(values, probabilities))
        if (plog := self.prediction_log) is not None:
            parts.logged.append(plog.entry(job, part, prepared, values, probabilities))
        parts.done = stop
        rate = (stop - start) / max(time.perf_counter() - began, 1e-6)
        parts.size = max(MIN_PART_ROWS, int(rate * PART_SECONDS))
        if stop < payload.rows:
            return None
        reply = decoded.writer.body(parts.written)
        if self.prediction_log is not None:
            self.prediction_log.add(job, parts.logged)
        return reply

    def _score(self, call: list[_Scoring], jobs: list[Job]) -> list[tuple[_Scoring, Reply]]:
        """One estimator call for `call`; if it fails for several requests, each is scored
        again on its own, so that one bad request fails alone."""
        first = call[0]
        try:
            predictions: Predictions = first.model.predict_many(
                [scoring.prepared for scoring in call],
                proba=any(scoring.needs_proba for scoring in call),
            )
        except Exception as exc:
            if len(call) == 1:
                return [(first, error_reply(exc, jobs[first.index].request))]
            return [pair for scoring in call for pair in self._score([scoring], jobs)]
        self.stats.record_batch(sum(scoring.prepared.rows for scoring in call))
        self.drift.record(first.model, [scoring.prepared for scoring in call], predictions.values)
        replies = []
        start = 0
        for scoring in call:
            stop = start + scoring.prepared.rows
            probabilities = predictions.probabilities
            job = jobs[scoring.index]
            try:
                values, asked = scoring.labelled(
                    predictions.values[start:stop],
                    None if probabilities is None else probabilities[start:stop],
                )
                reply = scoring.writer.encode(values, asked)
            except Exception as exc:
                reply = error_reply(exc, job.request)
            else:
                if self.prediction_log is not None:
                    self.prediction_log.record(
                        job, scoring.payload, scoring.prepared, values, asked
                    )
            replies.append((scoring, reply))
            start = stop
        return replies


def _prepare(index: int, decoded: _Decoded) -> _Scoring:
    payload = decoded.payload.part()
    prepared = decoded.model.prepare(payload.columns, payload.frame)
    return _Scoring(
        index, decoded.model, prepared, decoded.proba, decoded.writer, decoded.decision, payload
    )


def _labelled(
    values: Any, probabilities: Any, proba: bool, decision: Decision | None
) -> tuple[Any, Any]:
    """A request's labels, by its decision threshold if it has one, and its probabilities if
    it asked for them (a call shared with other requests may have computed them anyway)."""
    if decision is not None:
        values = decision.labels(probabilities)
    return values, probabilities if proba else None


def model_name(model: Model) -> str:
    """The name a model is served under in V2 paths: its registered name (or logged model
    id) when it came from an MLflow registry, else its directory or file name."""
    registry = model.card.source.get("registry")
    if registry and (registry.get("name") or registry.get("model_id")):
        return str(registry.get("name") or registry.get("model_id"))
    return model.path.stem if model.path.is_file() else model.path.name or "model"


def model_version(model: Model) -> str:
    """Its registered version, else the start of its SHA-256."""
    registry = model.card.source.get("registry")
    if registry and registry.get("version") is not None:
        return str(registry["version"])
    return model.card.sha256[:12]


def model_metadata(model: Model) -> dict[str, Any]:
    """V2 model metadata: the input columns as tensors, and the outputs."""
    return tensors.model_metadata(
        model_name(model),
        model_version(model),
        [(column.name, column.dtype) for column in model.signature.inputs],
        model.card.classes if model.is_classifier else None,
        model.can_predict_proba,
    )


def error_reply(exc: BaseException, request: Request | None = None) -> Reply:
    """The one place an exception becomes an HTTP status and the JSON error body, in the
    shape of the route's protocol (`route_protocol`): MLflow's `{"error_code", "message"}`,
    or the Open Inference Protocol's `{"error": message}` on `/v2`.

    Client errors, a model still loading and a timeout are answered; a model failing or a
    bug is also logged, and a bug's traceback stays in the log, never in the reply.
    """
    v2 = request is not None and route_protocol(request.path) == "v2"
    if isinstance(exc, InferError):
        headers: tuple[tuple[str, str], ...] = ()
        if isinstance(exc, MethodNotAllowed):
            headers = (("Allow", ", ".join(exc.allowed)),)
        elif isinstance(exc, Unauthorized):
            headers = (("WWW-Authenticate", "Bearer"),)
        if exc.http_status >= 500 and not isinstance(exc, (NotReady, RequestTimeout)):
            log(f"error{_where(request)}: {exc.message}")
        status, code, message = exc.http_status, exc.error_code, protocol.client_message(exc)
    else:
        log(f"internal error{_where(request)}:", "".join(traceback.format_exception(exc)))
        status, code, message = 500, "INTERNAL_ERROR", "internal server error (logged)"
        headers = ()
    body = protocol.encode_json({"error": message}) if v2 else protocol.encode_error(code, message)
    return Reply(status, body, JSON, headers)


def route_protocol(path: str) -> str:
    """The protocol a path belongs to, which shapes its error bodies: "v2" or "mlflow"."""
    path = path.split("?", 1)[0]
    return "v2" if path == "/v2" or path.startswith("/v2/") else "mlflow"


def _where(request: Request | None) -> str:
    return f" ({request.method} {request.path})" if request else ""


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        methods = ("GET", "HEAD") if allowed == "GET" else (allowed,)
        raise MethodNotAllowed(f"{method} is not allowed here (use {allowed})", methods)


def _json(status: int, document: Any) -> Reply:
    return Reply(status, protocol.encode_json(document))
