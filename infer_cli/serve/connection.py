"""One client connection of the event loop and where its current request stands."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .jobs import Job
    from .messages import Head


class Connection:
    """One client connection and where its current request stands."""

    __slots__ = (
        "began",
        "buffer",
        "close_after",
        "deadline",
        "eof",
        "handshaking",
        "head",
        "job",
        "last_read",
        "length",
        "lingering",
        "out",
        "peer",
        "refused",
        "since",
        "sock",
    )

    def __init__(self, sock: socket.socket, peer: str, now: float) -> None:
        self.sock = sock
        self.peer = peer
        self.buffer = bytearray()
        self.out: bytes | memoryview = b""
        """What is left to send; a view, so that sending a large reply in parts copies nothing."""
        self.head: Head | None = None
        self.length = 0
        self.job: Job | None = None
        self.deadline = 0.0
        self.began = 0.0
        self.close_after = False
        self.eof = False
        self.refused = False
        """A request was refused before its body was read: the client may still be sending."""
        self.lingering = 0.0
        """Until when a refused client's bytes are read and dropped, so it sees the refusal."""
        self.handshaking = False
        """A TLS handshake is under way: no request can be read yet."""
        self.last_read = now
        self.since = now
        """When the connection last went idle, began a request, or sent part of a reply."""

    @property
    def busy(self) -> bool:
        """A reply is being prepared or written: the next request waits."""
        return self.job is not None or bool(self.out)

    @property
    def reading(self) -> bool:
        """Part of a request has arrived."""
        return self.head is not None or bool(self.buffer)

    @property
    def said_all(self) -> bool:
        """The client has half-closed and nothing but line ends is left to answer."""
        return self.eof and not self.buffer.strip()
