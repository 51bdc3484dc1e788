"""The prediction server's endpoints, with no sockets in sight.

`App.route(request)` answers at once what needs no model call and turns a prediction
request into a `Job`; `App.answer(jobs)` decodes a batch of jobs, scores them with one
estimator call per model and output kind, and encodes each caller's own rows back.
`error_reply` is the one place an exception becomes an HTTP status and a JSON body.

Endpoints follow MLflow's scoring server (`/ping`, `/health`, `/version`, `/invocations`)
and the Open Inference Protocol V2 (`/v2/...`); `GET /metrics` is Prometheus text. A server
may serve several models by name (`/models/NAME/invocations`, `/v2/models/NAME/infer`);
the first is the default, which `/invocations` scores with.
"""

from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..core.model import rejoined
from ..errors import DataError, InferError, SchemaError
from . import protocol
from .access_log import log
from .auth import Tokens
from .batcher import split_by_rows
from .drift import DriftMonitors
from .errors import MethodNotAllowed, NotFound, NotReady, RequestTimeout, Unauthorized
from .jobs import Decoded, Job, Parts, Scoring, Writer, labelled
from .messages import JSON, Reply, Request
from .metrics import prometheus
from .options import ServeOptions
from .payloads import Limits, Payload
from .prediction_log import PredictionLog
from .served import ServedModels, model_metadata, model_name, model_version
from .stats import ServeStats

if TYPE_CHECKING:
    from ..core.model import Model, Predictions
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


class App:
    """The server's state and routes: the models served, by name, and their counts."""

    def __init__(self, options: ServeOptions | None = None, stats: ServeStats | None = None):
        self.options = options or ServeOptions()
        self.stats = stats or ServeStats()
        self.limits = Limits(
            rows=self.options.max_rows,
            columns=self.options.max_columns,
            text_bytes=TEXT_PER_BODY_BYTE * self.options.max_body_bytes,
            every_column=bool(self.options.log_predictions),
        )
        self._models = ServedModels()
        self._decisions: dict[int, tuple[Model, Decision | None]] = {}
        self.drifts = DriftMonitors(self.options.drift_window, self.options.profile)
        self.tokens = Tokens(self.options.auth_token_file, self.options.auth_token)
        self.prediction_log = PredictionLog.open(
            self.options,
            self.stats,
            lambda job: (job.name or model_name(job.model), model_version(job.model)),
        )

    def close(self) -> None:
        """Write what the prediction log holds, once the server has stopped answering."""
        if self.prediction_log is not None:
            self.prediction_log.close()

    @property
    def models(self) -> ServedModels:
        """The models served, by name, the default first; empty until they are loaded."""
        return self._models

    @models.setter
    def models(self, models: dict[str, Model]) -> None:
        self._models = ServedModels(models)

    @property
    def model(self) -> Model | None:
        """The default model: the first one, which `/invocations` scores with."""
        return next(iter(self.models.values()), None)

    @model.setter
    def model(self, model: Model | None) -> None:
        """Serve `model` as the default, under the default's name, or its own if none."""
        name = next(iter(self.models), model_name(model) if model else "")
        self.models = {**self.models, name: model} if model else {}

    @property
    def ready(self) -> bool:
        return bool(self.models)

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
        small: dict[tuple[int, str], list[tuple[int, Decoded, Payload]]] = {}
        large: list[int] = []
        for index, job in enumerate(jobs):
            try:
                if job.parts is None:
                    decoded = self._decode(job)
                    if decoded.payload.rows <= FIRST_PART_ROWS:
                        # Probabilities and thresholds are applied per request after the model
                        # call, so every request for a model shares it, whatever it asks.
                        cells = decoded.payload.part()  # each cell checked: may refuse
                        key = (id(decoded.model), decoded.name)
                        small.setdefault(key, []).append((index, decoded, cells))
                        continue
                    job.parts = Parts(decoded, size=FIRST_PART_ROWS)
                large.append(index)
            except Exception as exc:
                replies[index] = error_reply(exc, job.request)
        for requests in small.values():
            group = _prepare(requests, replies, jobs)
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
            self.models.default()
            return Reply(200, b"\n")
        if path == "/invocations":
            _allow(method, "POST")
            name, model = self.models.default()
            return Job(request, model, infer=False, name=name)
        if path == "/version":
            _allow(method, "GET")
            # The body stays MLflow's (the server's version); the model's is in a header.
            registry = self.model.card.source.get("registry") if self.model else None
            named = (("X-Model-Version", registry["resolved"]),) if registry else ()
            return Reply(200, __version__.encode(), "text/plain; charset=utf-8", named)
        if path == "/metrics":
            _allow(method, "GET")
            text = prometheus(self.stats, self.models, self.drifts)
            return Reply(200, text.encode(), PROMETHEUS)
        if path == "/drift":
            _allow(method, "GET")
            name, model = self.models.default()
            return _json(200, self.drifts.of(name).report(model, name))
        if path in ("/models", "/models/"):
            _allow(method, "GET")
            return _json(200, self.models.listing())
        if path.startswith("/models/"):
            return self._named_route(path, method, request)
        if path.startswith("/v2"):
            return self._v2(path, method, request)
        raise NotFound(f"no endpoint at {path} (try POST /invocations)")

    def _named_route(self, path: str, method: str, request: Request) -> Reply | Job:
        """`/models/NAME/invocations`, `/models/NAME` (its metadata), `/models/NAME/drift`."""
        parts = path.split("/")
        name, model = self.models.named(parts[2])
        action = parts[3] if len(parts) == 4 else "" if len(parts) == 3 else "/"
        if action == "invocations":
            _allow(method, "POST")
            return Job(request, model, infer=False, name=name)
        if action == "":
            _allow(method, "GET")
            return _json(200, model_metadata(model, name))
        if action == "drift":
            _allow(method, "GET")
            return _json(200, self.drifts.of(name).report(model, name))
        raise NotFound(f"no endpoint at {path} (try POST /models/{name}/invocations)")

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
        if path in ("/v2/models", "/v2/models/"):
            _allow(method, "GET")
            return _json(200, self.models.listing())
        parts = path.split("/")
        if len(parts) < 4 or parts[2] != "models":
            raise NotFound(f"no endpoint at {path}")
        name, model = self.models.named(parts[3])
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
            return _json(200, model_metadata(model, name))
        if action == "ready":
            _allow(method, "GET")
            return _json(200, {"name": name, "ready": True})
        if action == "infer":
            _allow(method, "POST")
            return Job(request, model, infer=True, name=name)
        raise NotFound(f"no endpoint at {path}")

    def _decode(self, job: Job) -> Decoded:
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
            name = job.name or model_name(model)
            version, classes = model_version(model), model.card.classes
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

            writer = Writer(flat=True, body=body, binary=infer.binary)

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

            writer = Writer(flat=False, body=body)

        if proba and not model.can_predict_proba:
            raise DataError("this model does not give class probabilities")
        if not payload.rows:
            raise DataError("the request holds no rows")
        return Decoded(model, payload, proba, writer, decision, job.name)

    def _decision(self, model: Model, requested: Any, name: str) -> Decision | None:
        """The request's threshold, else the server's (`serve --threshold`), else the one
        saved in the model's card, else None."""
        if requested is not None:
            return model.decision(requested, name=name, origin="the request")
        # The same for every request to a model; worked out once per model served.
        known = self._decisions.get(id(model))
        if known is None or known[0] is not model:
            if len(self._decisions) > len(self.models) + 1:  # reloaded ones are forgotten
                self._decisions.clear()
            known = (model, model.decision(self.options.threshold, origin="serve --threshold"))
            self._decisions[id(model)] = known
        return known[1]

    def _score_part(self, parts: Parts, job: Job) -> Reply | None:
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
        self.stats.record_batch(prepared.rows, decoded.name or None)
        self.drifts.of(decoded.name).record(model, [prepared], predictions.values)
        values, probabilities = labelled(
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

    def _score(self, call: list[Scoring], jobs: list[Job]) -> list[tuple[Scoring, Reply]]:
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
        self.stats.record_batch(sum(s.prepared.rows for s in call), first.name or None)
        prepared = rejoined([scoring.prepared for scoring in call])
        self.drifts.of(first.name).record(first.model, prepared, predictions.values)
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


def _prepare(
    requests: list[tuple[int, Decoded, Payload]], replies: list[Reply | None], jobs: list[Job]
) -> list[Scoring]:
    """The requests for one model validated, together when they can be (one pass per column
    for all of them), else one by one; a request refused gets its error reply."""
    model = requests[0][1].model
    columns = [payload.columns for _, _, payload in requests if payload.columns is not None]
    together = None
    if len(columns) == len(requests):
        try:
            together = model.prepare_together(columns)
        except Exception:  # whatever one request holds, it is answered alone below
            together = None
    scorings = []
    for position, (index, decoded, payload) in enumerate(requests):
        try:
            if together is not None:
                prepared = together[position]
            else:
                prepared = model.prepare(payload.columns, payload.frame)
        except Exception as exc:
            replies[index] = error_reply(exc, jobs[index].request)
            continue
        scorings.append(
            Scoring(
                index,
                model,
                prepared,
                decoded.proba,
                decoded.writer,
                decoded.decision,
                payload,
                decoded.name,
            )
        )
    return scorings


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
