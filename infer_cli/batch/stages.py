"""Running a stream's read, transform and write stages on three threads, so that they overlap.

pyarrow parses and formats CSV, and numpy computes, without holding the GIL, so the stages
share the cores. Queues of one item keep only a few chunks in memory. The transform runs on
the calling thread, where Ctrl-C and SIGTERM arrive; the first error stops every stage and is
raised to the caller. A read that fails takes its place in the stream, so that an error in an
item read before it, found later by the transform, is the one raised: errors come in the
order of the input.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

_DONE = object()


class _Failed:
    """The error that ended the reading, in the place of the item it could not read."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_POLL_SECONDS = 0.1
_JOIN_SECONDS = 5.0
# Long enough to parse a block; short, because Ctrl-C on a terminal's idle stdin waits for it.
_READER_JOIN_SECONDS = 1.0


def run_stages(
    items: Iterable[Item],
    transform: Callable[[Item], Result],
    consume: Callable[[Result], None],
    *,
    depth: int = 1,
) -> None:
    """Feed every item through `transform` and hand each result, in order, to `consume`."""
    stop = threading.Event()
    inbox: queue.Queue[Any] = queue.Queue(depth)
    outbox: queue.Queue[Any] = queue.Queue(depth)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for item in items:
                if not _put(inbox, item, stop):
                    return
            _put(inbox, _DONE, stop)
        except BaseException as exc:
            if not _put(inbox, _Failed(exc), stop):
                errors.append(exc)

    def drain() -> None:
        try:
            while (result := _get(outbox, stop)) is not _DONE:
                consume(result)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    reader = threading.Thread(target=produce, name="read", daemon=True)
    writer = threading.Thread(target=drain, name="write", daemon=True)
    reader.start()
    writer.start()
    try:
        while (item := _get(inbox, stop)) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            if not _put(outbox, transform(item), stop):
                break
        _put(outbox, _DONE, stop)
        while writer.is_alive():
            writer.join(_POLL_SECONDS)
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        # Daemon threads cannot hold the process open, and the reader may be blocked on an
        # idle pipe, so each is given a moment, not forever: the writer to finish a write
        # before the caller removes the file it writes to, the reader to leave pyarrow's
        # C++ code, which aborts the process ("terminate called without an active
        # exception") when the interpreter shuts down under it.
        writer.join(_JOIN_SECONDS)
        reader.join(_READER_JOIN_SECONDS)
    if errors:
        raise errors[0]


def _put(channel: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            channel.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def _get(channel: queue.Queue[Any], stop: threading.Event) -> Any:
    while not stop.is_set():
        try:
            return channel.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            continue
    return _DONE
