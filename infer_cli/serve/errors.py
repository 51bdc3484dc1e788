"""Errors only the server raises: each carries the HTTP status it is answered with.

`routes.error_reply` is the one place any exception becomes a status and a JSON body.
"""

from __future__ import annotations

from ..errors import ExitCode, InferError


class UnsupportedMediaType(InferError):
    """A request body in a content type the server does not speak."""

    exit_code = ExitCode.USAGE
    http_status = 415
    error_code = "BAD_REQUEST"


class PayloadTooLarge(InferError):
    """A request body larger than the server's configured limit."""

    exit_code = ExitCode.USAGE
    http_status = 413
    error_code = "BAD_REQUEST"


class NotFound(InferError):
    """A request for a path the server does not serve."""

    exit_code = ExitCode.USAGE
    http_status = 404
    error_code = "ENDPOINT_NOT_FOUND"


class ModelNotFound(NotFound):
    """A request for a model by a name the server serves none under."""

    error_code = "RESOURCE_DOES_NOT_EXIST"


class Unauthorized(InferError):
    """A request without an accepted bearer token, to a server that requires one."""

    exit_code = ExitCode.USAGE
    http_status = 401
    error_code = "UNAUTHENTICATED"


class MethodNotAllowed(InferError):
    """A request with a method the path does not take; `allowed` lists those it does."""

    exit_code = ExitCode.USAGE
    http_status = 405
    error_code = "METHOD_NOT_ALLOWED"

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class LengthRequired(InferError):
    """A request with a body but no Content-Length (chunked bodies are not accepted)."""

    exit_code = ExitCode.USAGE
    http_status = 411
    error_code = "BAD_REQUEST"


class NotReady(InferError):
    """A prediction asked of a server whose model is still loading."""

    exit_code = ExitCode.MODEL
    http_status = 503
    error_code = "SERVICE_UNAVAILABLE"


class RequestTimeout(InferError):
    """A prediction that did not finish within the server's per-request time limit."""

    exit_code = ExitCode.INTERNAL
    http_status = 504
    error_code = "DEADLINE_EXCEEDED"


class ClientTimeout(InferError):
    """A client that did not send its whole request within the server's read time limit."""

    exit_code = ExitCode.USAGE
    http_status = 408
    error_code = "REQUEST_TIMEOUT"


class MalformedRequest(InferError):
    """Bytes that are not an HTTP/1.1 request the server can read: answered with `status`
    (400, 414 or 431), and the connection closed, since where a next request would start
    is unknown."""

    exit_code = ExitCode.USAGE
    http_status = 400
    error_code = "BAD_REQUEST"

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.http_status = status
