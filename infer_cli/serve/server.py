"""The prediction server: a listening socket, bound at once, and the event loop that serves
it (`loop.py`), started and drained from another thread."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

from .loop import EventLoop
from .routes import App

if TYPE_CHECKING:
    import ssl

BACKLOG = 1024


class PredictionServer:
    """Serves `app` on a listening socket, bound at once; `serve_forever()` runs the loop and
    `shutdown()` drains it: no new connections, in-flight requests answered, then it returns.
    """

    def __init__(
        self, address: tuple[str, int], app: App, tls: ssl.SSLContext | None = None
    ) -> None:
        self.app = app
        self.tls = tls
        """Each accepted connection speaks TLS in this context, when there is one."""
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.socket = socket.create_server(address, family=family, backlog=BACKLOG)
        # Workers share this socket: one that loses the race for a connection must not block.
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._loop: EventLoop | None = None

    def serve_forever(self) -> None:
        """Answer requests until `shutdown()`; then finish those in flight and return."""
        with self._lock:
            if self._stop.is_set():
                return
            # Made here, not at bind time: workers fork after binding, and each needs its own.
            self._loop = EventLoop(self.socket, self.app, self.tls)
        try:
            self._loop.run(self._stop.is_set)
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish (within their time limits), wait."""
        with self._lock:
            self._stop.set()
            loop = self._loop
        if loop is not None:
            loop.wake()
            self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()
