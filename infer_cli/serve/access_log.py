"""The server's log on stderr: error lines at once, access-log lines a few times a second."""

from __future__ import annotations

import email.utils
import sys
import threading
import time
from collections import deque
from typing import Any

from ..errors import printable


def log(line: str, detail: str = "") -> None:
    """The server's log: stderr, after any access lines still held. `line` is written as one
    line and `detail` (a traceback) below it, both escaped: a request's path or values, or
    a library's message about them, never reach a terminal raw."""
    ACCESS_LOG.flush()
    text = printable(line)
    if detail:
        text += "\n" + "\n".join(printable(part) for part in detail.rstrip().split("\n"))
    _write(text + "\n")


def _write(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class AccessLog:
    """Access-log lines, written by a background thread a few times a second.

    A write per request would be a system call per request, each one a chance for another
    thread to take the interpreter lock; under load that costs more than the line is worth.
    """

    INTERVAL_SECONDS = 0.1

    def __init__(self) -> None:
        self._lines: deque[str] = deque()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None

    def add(self, line: str) -> None:
        self._lines.append(line)
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._run, name="access-log")
                    self._writer.daemon = True
                    self._writer.start()

    def flush(self) -> None:
        with self._lock:
            lines = []
            while self._lines:
                lines.append(self._lines.popleft())
            if lines:
                _write("\n".join(lines) + "\n")

    def _run(self) -> None:
        while True:
            time.sleep(self.INTERVAL_SECONDS)
            self.flush()


ACCESS_LOG = AccessLog()


_date_cache: list[Any] = [0, "", ""]


def _refresh_clock() -> None:
    now = int(time.time())
    if _date_cache[0] != now:
        # The access log's date as the Common Log Format writes it: 28/Nov/2026:07:01:18 +0000.
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(now))
        _date_cache[:] = [now, email.utils.formatdate(now, usegmt=True), stamp]


def http_date() -> str:
    _refresh_clock()
    return str(_date_cache[1])


def log_time() -> str:
    _refresh_clock()
    return str(_date_cache[2])
