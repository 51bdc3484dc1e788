"""HTTPS on the selectors loop: the server's TLS context, and handshakes that never block.

The context is made once at start-up, so that a certificate that does not load or does not
match its key stops `serve` with exit 2 before any client connects. Each accepted socket is
wrapped without a handshake; the loop drives it a step whenever the socket is ready, and a
client that stalls in it is closed after `--read-timeout` like any slow client.
"""

from __future__ import annotations

import selectors
import socket
import ssl

from ..errors import UsageError

WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
"""What a non-blocking socket, plain or TLS, raises when it must wait to go on."""


def server_context(cert: str, key: str | None, client_ca: str | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ server context for `cert` and `key` (or a `cert` file holding both);
    clients must show a certificate signed by `client_ca` when one is given."""
    for role, path in (("certificate", cert), ("key", key), ("client CA file", client_ca)):
        if path:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise UsageError(f"cannot read the TLS {role} {path}: {exc.strerror}") from exc
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            reason = f"the key {key} does not match it" if key else "its key does not match it"
        else:
            reason = "not a PEM certificate" + (
                f" with {key} a PEM private key" if key else " and key"
            )
        raise UsageError(f"cannot use the TLS certificate {cert}: {reason}") from exc
    if client_ca:
        try:
            context.load_verify_locations(cafile=client_ca)
        except ssl.SSLError as exc:
            raise UsageError(
                f"cannot use the TLS client CA file {client_ca}: no PEM certificate in it"
            ) from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def wrap(context: ssl.SSLContext, sock: socket.socket) -> ssl.SSLSocket:
    """An accepted socket as TLS, its handshake left to `handshake`."""
    return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)


def pending(sock: socket.socket) -> int:
    """Bytes of a TLS record already read off the socket and not yet taken."""
    return sock.pending() if isinstance(sock, ssl.SSLSocket) else 0


def handshake(sock: socket.socket) -> int | None:
    """Take the handshake as far as it goes now: the selector events it waits for, 0 once
    done, None if it failed (a client that is not speaking TLS, or a refused certificate)."""
    assert isinstance(sock, ssl.SSLSocket)
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        return selectors.EVENT_READ
    except ssl.SSLWantWriteError:
        return selectors.EVENT_WRITE
    except (OSError, ValueError):
        return None
    return 0
