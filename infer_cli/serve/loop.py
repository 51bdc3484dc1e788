"""HTTP/1.1 for the prediction server: every connection on one `selectors` loop.

A thread per connection, as `http.server` has it, spends its time under load waking
threads and passing the interpreter lock between them: with 256 keep-alive clients its
p99 latency passed a second. Here one thread accepts, reads and writes every connection
and answers what needs no model; prediction jobs go to their model's batcher, a scoring
thread per model served (so a slow model holds up only its own requests), whose replies
come back through a wake-up socket. A connection holds one request at a
time (pipelined ones wait in its buffer), so its replies go out in order.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .access_log import ACCESS_LOG, log, log_time, printable
from .batcher import Batcher, Batchers
from .connection import Connection
from .errors import ClientTimeout, RequestTimeout
from .messages import (
    Reply,
    Request,
    body_length,
    encode_reply,
    parse_head,
    take_head,
    with_request_id,
)
from .options import ServeOptions
from .routes import App, Job, error_reply
from .tls import WOULD_BLOCK, handshake, pending, wrap

if TYPE_CHECKING:
    import ssl

RECV_BYTES = 256 * 1024
ACCEPTS_PER_WAKEUP = 64
SWEEP_SECONDS = 0.05
"""How often time limits are checked: their precision."""
LINGER_SECONDS = 2.0
INLINE_SECONDS = 0.002
"""A batch expected to score within this is scored on the loop's own thread: less than the
interpreter's switch interval, which is how long a scoring thread could hold it anyway."""
_LISTENER = object()
_WAKE = object()


class EventLoop:
    """The event loop of one serving process, on a listening socket (`server.py` binds it)."""

    def __init__(
        self, listener: socket.socket, app: App, tls: ssl.SSLContext | None = None
    ) -> None:
        self.app = app
        self.tls = tls
        self.options: ServeOptions = app.options
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.connections: set[Connection] = set()
        self.waiting: dict[Job, Connection] = {}
        self.routed: list[Job] = []
        """Jobs read in this turn of the loop, handed to the batcher together at its end."""
        self.replies: deque[tuple[Job, Reply]] = deque()
        self.wake_in, self.wake_out = socket.socketpair()
        self.wake_in.setblocking(False)
        self.wake_out.setblocking(False)
        self.partial: set[Connection] = set()
        """Connections receiving a body, which a batch may wait for; dropped once they stall."""
        self.accepting = True
        self.listener_paused = False
        self.batchers: Batchers[Job, Reply] = Batchers(
            lambda job: job.name,
            lambda: Batcher(
                app.answer,
                self._delivered,
                lambda job, exc: error_reply(exc, job.request),
                max_jobs=self.options.max_batch_rows,  # a job holds one row at least
                max_delay=self.options.max_batch_delay,
                arriving=self.partial.__len__,
                inline_seconds=INLINE_SECONDS,
                size=lambda job: len(job.request.body),
            ),
        )

    def wake(self) -> None:
        """Interrupt the loop's wait; safe from any thread."""
        with contextlib.suppress(OSError):
            self.wake_out.send(b"\0")

    def run(self, stopping: Callable[[], bool]) -> None:
        self.selector.register(self.listener, selectors.EVENT_READ, _LISTENER)
        self.selector.register(self.wake_in, selectors.EVENT_READ, _WAKE)
        next_sweep = time.monotonic() + SWEEP_SECONDS
        try:
            while self.accepting or self.connections:
                if self.accepting and stopping():
                    self._stop_accepting()
                # Requests already routed (pipelined ones let through by replies scored at
                # once) wait only for what else is ready now, so that a client pipelining
                # hundreds of requests takes turns with the others, one request a turn.
                ready = self.selector.select(0 if self.routed else SWEEP_SECONDS)
                for key, mask in ready:
                    self._dispatch(key.data, mask)
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + SWEEP_SECONDS
                if self.routed:
                    routed, self.routed = self.routed, []
                    self.replies.extend(self.batchers.submit(routed))
                    self._hand_out()
        finally:
            for connection in list(self.connections):
                self._close(connection)
            self.batchers.stop(timeout=1)
            self.selector.close()
            self.wake_in.close()
            self.wake_out.close()
            ACCESS_LOG.flush()

    def _dispatch(self, target: object, mask: int) -> None:
        if target is _LISTENER:
            self._accept()
        elif target is _WAKE:
            self._take_replies()
        else:
            assert isinstance(target, Connection)
            try:
                self._serve(target, mask)
            except Exception:
                self._fault(target)

    def _serve(self, connection: Connection, mask: int) -> None:
        if connection.handshaking:
            self._handshake(connection)
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(connection)
        if mask & selectors.EVENT_READ and _is_open(connection):
            self._read(connection)

    # Each connection's work is guarded by try/except and this, not a context manager,
    # whose generator costs a few percent of a request's time at thousands a second.
    def _fault(self, connection: Connection) -> None:
        """A fault of the server's own ends that connection, logged, and never the loop."""
        log(f"internal error serving {connection.peer}:", traceback.format_exc())
        self._close(connection)

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                sock, peer = self.listener.accept()
            except WOULD_BLOCK:
                return
            except OSError as exc:
                # Out of file descriptors: the listener stays readable; wait for a sweep.
                log(f"cannot accept a connection: {exc.strerror}")
                self.selector.unregister(self.listener)
                self.listener_paused = True
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = wrap(self.tls, sock)
            connection = Connection(sock, str(peer[0]), time.monotonic())
            connection.handshaking = self.tls is not None
            self.connections.add(connection)
            self.selector.register(sock, selectors.EVENT_READ, connection)

    def _handshake(self, connection: Connection) -> None:
        """A step of a TLS handshake; once done, the request may already be waiting."""
        events = handshake(connection.sock)
        if events is None:
            self._close(connection)
        elif events:
            self.selector.modify(connection.sock, events, connection)
        else:
            connection.handshaking = False
            self._watch(connection)
            self._read(connection)

    def _stop_accepting(self) -> None:
        self.accepting = False
        if not self.listener_paused:
            self.selector.unregister(self.listener)
        # Closed now, so that new clients are refused instead of waiting in a backlog.
        self.listener.close()
        for connection in list(self.connections):
            if not connection.busy and not connection.reading:
                self._close(connection)

    def _read(self, connection: Connection) -> None:
        try:
            data = connection.sock.recv(RECV_BYTES)
            # TLS hands out a record at a time: the rest of one already read is not a
            # readable socket, so it is taken now.
            while data and (waiting := pending(connection.sock)):
                data += connection.sock.recv(waiting)
        except WOULD_BLOCK:
            return
        except OSError:
            data = b""
        if connection.lingering:
            if not data:
                self._close(connection)
            return
        if not data:
            if connection.busy:
                # Half-closed after sending: what it sent, pipelined requests included, is
                # still answered, and the connection ends after the last reply.
                connection.eof = True
                self._watch(connection)
            else:
                self._close(connection)
            return
        connection.last_read = time.monotonic()
        if not connection.busy and not connection.reading:
            connection.since = connection.last_read
        connection.buffer += data
        if not connection.busy:
            self._next_request(connection)
        elif len(connection.buffer) > RECV_BYTES:
            # Pipelined requests pile up while this one is answered: stop reading for now.
            self._watch(connection)

    def _next_request(self, connection: Connection) -> None:
        """Take complete requests off the buffer while none is being answered."""
        while not connection.busy and _is_open(connection):
            try:
                request = self._take_request(connection)
            except Exception as exc:
                head, connection.head = connection.head, None
                connection.close_after = connection.refused = True
                known = Request(head.method, head.path, head.headers) if head else None
                self._reply(connection, error_reply(exc, known), known)
                break
            if request is None:
                break
            routed = self.app.route(request)
            if isinstance(routed, Reply):
                self._reply(connection, routed, request)
            else:
                connection.job = routed
                connection.deadline = time.monotonic() + self.options.request_timeout
                self.waiting[routed] = connection
                self.routed.append(routed)
        if connection.eof and not connection.busy:
            # Whatever is left of a half-closed client's bytes can never become a request.
            self._close(connection)
            return
        if _is_open(connection) and connection.head is not None and not connection.busy:
            self.partial.add(connection)
        else:
            self.partial.discard(connection)
        self._watch(connection)

    def _take_request(self, connection: Connection) -> Request | None:
        buffer = connection.buffer
        if connection.head is None:
            raw = take_head(buffer)
            if raw is None:
                return None
            head = parse_head(raw)
            connection.head = head
            connection.began = time.perf_counter()
            connection.close_after = not head.keep_alive
            connection.length = body_length(head, self.options.max_body_bytes)
            expects = head.headers.get("expect", "").lower() == "100-continue"
            if expects and head.version == "HTTP/1.1" and len(buffer) < connection.length:
                self._send(connection, b"HTTP/1.1 100 Continue\r\n\r\n")
        head, length = connection.head, connection.length
        if len(buffer) < length:
            return None
        body = bytes(buffer[:length])
        del buffer[:length]
        connection.head = None
        connection.since = time.monotonic()
        return Request(head.method, head.path, head.headers, body, connection.began)

    def _delivered(self, pairs: list[tuple[Job, Reply]]) -> None:
        """The batcher's thread: replies go back to the loop, which owns the sockets."""
        self.replies.extend(pairs)
        self.wake()

    def _take_replies(self) -> None:
        try:
            while self.wake_in.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        self._hand_out()

    def _hand_out(self) -> None:
        """Send the replies scored so far."""
        while self.replies:
            job, reply = self.replies.popleft()
            connection = self.waiting.pop(job, None)
            if connection is not None and connection.job is job:
                connection.job = None
                try:
                    reply = with_request_id(reply, job.request_id)
                    self._reply(connection, reply, job.request, job.name or None)
                    self._next_request(connection)
                except Exception:
                    self._fault(connection)

    def _reply(
        self,
        connection: Connection,
        reply: Reply,
        request: Request | None,
        model: str | None = None,
    ) -> None:
        """Send `reply`, counted for the server and for `model`, the model it was routed to."""
        close = connection.close_after or not self.accepting or connection.said_all
        payload = encode_reply(reply, request, close)
        connection.close_after = close
        self._record(connection, reply, request, model)
        self._send(connection, payload)
        if not connection.out:
            connection.since = time.monotonic()
            if close:
                self._end(connection)

    def _record(
        self, connection: Connection, reply: Reply, request: Request | None, model: str | None
    ) -> None:
        elapsed = time.perf_counter() - connection.began if connection.began else 0.0
        connection.began = 0.0
        self.app.stats.record(reply.status, elapsed, model)
        if self.options.access_log:
            line = printable(f"{request.method} {request.path}") if request else "-"
            ACCESS_LOG.add(
                f'{connection.peer} - [{log_time()}] "{line}" '
                f"{reply.status} {len(reply.body)} {elapsed * 1000:.2f}ms"
            )

    def _send(self, connection: Connection, payload: bytes | memoryview) -> None:
        if connection.out:
            connection.out = bytes(connection.out) + payload
            return
        try:
            sent = connection.sock.send(payload)
        except WOULD_BLOCK:
            sent = 0
        except OSError:
            connection.out = b""
            connection.close_after = True
            return
        connection.out = memoryview(payload)[sent:] if sent < len(payload) else b""
        if connection.out:
            connection.since = time.monotonic()
            self._watch(connection)

    def _flush(self, connection: Connection) -> None:
        out, connection.out = connection.out, b""
        self._send(connection, out)
        if connection.out:
            return
        connection.since = time.monotonic()
        if connection.close_after:
            self._end(connection)
        else:
            self._next_request(connection)

    def _watch(self, connection: Connection) -> None:
        """Read unless pipelined requests pile up; write while a reply is unsent."""
        events = selectors.EVENT_WRITE if connection.out else 0
        if not connection.eof and (not connection.busy or len(connection.buffer) <= RECV_BYTES):
            events |= selectors.EVENT_READ
        try:
            key = self.selector.get_key(connection.sock)
        except KeyError:
            if events:
                self.selector.register(connection.sock, events, connection)
            return
        except ValueError:  # closed
            return
        if key.events != events:
            if events:
                self.selector.modify(connection.sock, events, connection)
            else:
                self.selector.unregister(connection.sock)

    def _end(self, connection: Connection) -> None:
        """Close after the last reply. A client refused while still sending its body would
        get a reset instead of the reply if the socket closed with its bytes unread: its
        side is shut for writing, and what it still sends is dropped, for a little while."""
        if not connection.refused or connection.eof:
            self._close(connection)
            return
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_WR)
        connection.buffer.clear()
        connection.lingering = time.monotonic() + LINGER_SECONDS
        self.partial.discard(connection)
        self._watch(connection)

    def _close(self, connection: Connection) -> None:
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        self.partial.discard(connection)
        if connection.job is not None:
            self._forget(connection, connection.job)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(connection.sock)
        connection.sock.close()

    def _sweep(self, now: float) -> None:
        """Enforce the time limits: on predictions, on clients sending, and on idle ones."""
        if self.accepting and self.listener_paused:
            self.listener_paused = False
            self.selector.register(self.listener, selectors.EVENT_READ, _LISTENER)
        limit = self.options.read_timeout
        for connection in list(self.partial):
            if now - connection.last_read > SWEEP_SECONDS:
                # A client that stalls mid-body must not hold every batch back by the delay.
                self.partial.discard(connection)
        for connection in list(self.connections):
            try:
                if connection.lingering:
                    if now > connection.lingering:
                        self._close(connection)
                elif connection.job is not None:
                    if now > connection.deadline:
                        self._time_out(connection, connection.job)
                elif now - connection.since <= limit:
                    continue
                elif connection.head is not None and not connection.out:
                    connection.close_after = True
                    connection.head = None
                    timeout = ClientTimeout(f"the body did not arrive within {limit:g} s")
                    self._reply(connection, error_reply(timeout), None)
                else:
                    self._close(connection)
            except Exception:
                self._fault(connection)

    def _time_out(self, connection: Connection, job: Job) -> None:
        timeout = self.options.request_timeout
        if self._forget(connection, job):
            message = f"no answer within {timeout:g} s; the server is busy"
        else:
            message = f"the model did not answer within {timeout:g} s"
        reply = with_request_id(error_reply(RequestTimeout(message), job.request), job.request_id)
        self._reply(connection, reply, job.request, job.name or None)
        self._next_request(connection)

    def _forget(self, connection: Connection, job: Job) -> bool:
        """Let go of the connection's job, whose reply, if it comes, is dropped; True if its
        scoring had not started."""
        connection.job = None
        self.waiting.pop(job, None)
        if job in self.routed:
            self.routed.remove(job)
            return True
        return self.batchers.withdraw(job)


def _is_open(connection: Connection) -> bool:
    return connection.sock.fileno() >= 0
