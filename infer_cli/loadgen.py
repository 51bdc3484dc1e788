"""A small HTTP load generator: keep-alive connections on threads, each sending one request
after another for a fixed time, recording every latency. `bench --url` drives a server with it.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import UsageError


@dataclass(frozen=True)
class Target:
    """Where requests go: host, port and path of an HTTP endpoint."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str, default_path: str) -> Target:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise UsageError(f"--url must be an http:// address, not '{url}'")
        path = parts.path if parts.path not in ("", "/") else default_path
        return cls(parts.hostname, parts.port or 80, path)


@dataclass(frozen=True)
class LoadResult:
    """What one run at one concurrency level saw."""

    concurrency: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    first_error: str | None

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + self.errors

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0


def run_load(
    target: Target,
    body: bytes,
    content_type: str,
    *,
    concurrency: int,
    duration: float,
    timeout: float = 10.0,
) -> LoadResult:
    """POST `body` from `concurrency` connections for `duration` seconds."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    first_errors: list[str | None] = [None] * concurrency
    start = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def client(slot: int) -> None:
        connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        start.wait()
        while time.perf_counter() < deadline[0]:
            began = time.perf_counter()
            try:
                connection.request("POST", target.path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    latencies[slot].append((time.perf_counter() - began) * 1000)
                    continue
                reason = f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                connection.close()
                connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
            errors[slot] += 1
            first_errors[slot] = first_errors[slot] or reason
        connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + duration
    start.wait()
    for thread in threads:
        thread.join(duration + timeout + 5)
    elapsed = time.perf_counter() - began
    return LoadResult(
        concurrency=concurrency,
        seconds=elapsed,
        latencies_ms=[value for slot in latencies for value in slot],
        errors=sum(errors),
        first_error=next((e for e in first_errors if e), None),
    )
