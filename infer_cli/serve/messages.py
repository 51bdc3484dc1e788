"""HTTP/1.1 messages as bytes: request heads parsed and limited, replies serialized.

Only what the prediction server needs: a request is a head and a `Content-Length` body
(chunked bodies are refused with 411), a reply is one buffer written at once.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from .. import __version__
from ..errors import DataError
from .access_log import http_date
from .errors import LengthRequired, MalformedRequest, PayloadTooLarge

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
SERVER = f"infer-cli/{__version__}"
_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in HTTPStatus}
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# What a client's X-Request-Id may hold to be kept: ids, UUIDs, trace ids. Anything else (a
# space, a quote, a control character, 200 characters) is replaced, never written raw.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@~-]{1,128}")

JSON = "application/json"


class Headers(dict[str, str]):
    """Request headers; names are matched without regard to case."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        super().__init__({name.lower(): value for name, value in (items or {}).items()})

    # dict's own methods, not super(): these are asked a dozen times per request.
    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


@dataclass(frozen=True)
class Request:
    """One HTTP request, already read off the socket."""

    method: str
    path: str
    headers: Headers
    body: bytes = b""
    received: float = 0.0
    """When its head was read (`time.perf_counter()`); 0 for one that came off no socket."""


@dataclass(frozen=True)
class Reply:
    """One HTTP response."""

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def request_id(headers: Headers) -> str:
    """The client's `X-Request-Id` if it is a sane one, else a new random id (32 hex digits)."""
    given = headers.get("x-request-id")
    if given and _SANE_REQUEST_ID.fullmatch(given):
        return str(given)
    # An id to find a request by in logs, not a secret: the random module's generator, which
    # each forked worker reseeds, not os.urandom, whose system call lets go of the GIL
    # and can leave the server's loop waiting a switch interval (5 ms) to get it back.
    return f"{random.getrandbits(128):032x}"


def with_request_id(reply: Reply, identifier: str) -> Reply:
    """`reply` carrying `X-Request-Id: identifier`."""
    headers = (*reply.headers, ("X-Request-Id", identifier))
    return Reply(reply.status, reply.body, reply.content_type, headers)


def take_head(buffer: bytearray) -> bytes | None:
    """Take a whole request head (line and headers) off the front of `buffer`; None until
    its blank line has arrived."""
    while buffer[:2] == b"\r\n":  # stray line ends between requests are allowed
        del buffer[:2]
    end = _HEAD_END.search(buffer, 0, MAX_HEAD_BYTES + 4)
    if end is None:
        if len(buffer) > MAX_HEAD_BYTES:
            if b"\n" not in buffer[:MAX_HEAD_BYTES]:
                raise MalformedRequest("request line too long", 414)
            raise MalformedRequest("request head too large", 431)
        return None
    head = bytes(buffer[: end.start()])
    del buffer[: end.end()]
    return head


@dataclass
class Head:
    """A request's line and headers, and what they say about its body and connection."""

    method: str
    path: str
    version: str
    headers: Headers

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if "close" in connection:
            return False
        return self.version == "HTTP/1.1" or "keep-alive" in connection


def parse_head(data: bytes) -> Head:
    """The request line and headers (without the blank line that ends them)."""
    text = str(data, "iso-8859-1").replace("\r\n", "\n")
    # A CR not ending a line, or a NUL, is read as a line end or a string end by some
    # proxies and not by others: refused, as RFC 9112 (2.2) and RFC 9110 (5.5) allow.
    if "\0" in text or "\r" in text:
        raise MalformedRequest("a bare CR or a NUL in the request head")
    lines = text.split("\n")
    request_line = lines[0]
    parts = request_line.split()
    if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise MalformedRequest(f"bad request line {request_line[:80]!r}")
    if len(lines) - 1 > MAX_HEADERS:
        raise MalformedRequest(f"more than {MAX_HEADERS} headers", 431)
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        # A name with spaces around it, or two differing lengths, could be read otherwise by
        # a proxy in front: refused, as RFC 9112 asks, so that no request hides in a body.
        if not colon or not name or name != name.strip():
            raise MalformedRequest("malformed header line")
        name, value = name.lower(), value.strip()
        if name == "content-length" and headers.get(name, value) != value:
            raise MalformedRequest("conflicting Content-Length headers")
        headers[name] = value
    return Head(parts[0], parts[1], parts[2], headers)


def body_length(head: Head, limit: int) -> int:
    """The body's length from Content-Length, which a body must have (no chunked bodies)."""
    declared = head.headers.get("content-length")
    if head.headers.get("transfer-encoding"):
        raise LengthRequired("send the body with a Content-Length header, not chunked")
    if declared is None:
        if head.method in ("POST", "PUT", "PATCH"):
            raise LengthRequired("send the body with a Content-Length header")
        return 0
    # isdigit() alone takes '²' (in Latin-1), and int() refuses thousands of digits.
    if not declared.isascii() or not declared.isdigit():
        raise DataError(f"invalid Content-Length '{declared[:40]}'")
    digits = declared.lstrip("0") or "0"
    if len(digits) > len(str(limit)) or int(digits) > limit:
        size = digits if len(digits) <= 20 else f"more than {limit}"
        raise PayloadTooLarge(f"the body is {size} bytes; this server takes at most {limit}")
    return int(digits)


def encode_reply(reply: Reply, request: Request | None, close: bool) -> bytes:
    """Status line, headers and body (none for HEAD) as one buffer."""
    head = [
        _STATUS_LINES.get(reply.status, f"HTTP/1.1 {reply.status} Unknown\r\n"),
        f"Server: {SERVER}\r\nDate: {http_date()}\r\n"
        f"Content-Type: {reply.content_type}\r\nContent-Length: {len(reply.body)}\r\n",
    ]
    head += [f"{name}: {value}\r\n" for name, value in reply.headers]
    if close:
        head.append("Connection: close\r\n")
    elif request is not None and "keep-alive" in request.headers.get("connection", "").lower():
        head.append("Connection: keep-alive\r\n")
    head.append("\r\n")
    payload = "".join(head).encode("latin-1")
    if request is None or request.method != "HEAD":
        payload += reply.body
    return payload
