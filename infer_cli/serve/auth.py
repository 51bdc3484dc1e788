"""Bearer tokens: which requests may use the server, and the tokens it accepts.

Tokens come from `--auth-token-file` (one a line, read again on SIGHUP so they can be
rotated without a restart) and `$INFER_CLI_AUTH_TOKEN`. They are compared in constant time
and never logged nor echoed; liveness probes need none.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from ..errors import UsageError
from .errors import Unauthorized

OPEN_PATHS = frozenset({"/ping", "/health", "/v2/health/live"})
"""Liveness probes: an orchestrator asks them without credentials."""
_SCHEME = "bearer "


class Tokens:
    """The bearer tokens a server accepts; none at all means every request is let in."""

    def __init__(self, token_file: str | None = None, token: str | None = None) -> None:
        self.token_file = Path(token_file) if token_file else None
        self.fixed = (token.strip().encode(),) if token and token.strip() else ()
        self.accepted: tuple[bytes, ...] = self.fixed + self._read()

    @property
    def required(self) -> bool:
        return self.token_file is not None or bool(self.fixed)

    def reload(self) -> int:
        """Read the token file again; on failure the tokens accepted so far stay (raises)."""
        self.accepted = self.fixed + self._read()
        return len(self.accepted)

    def check(self, path: str, authorization: str | None) -> None:
        """Raise `Unauthorized` unless `path` is open or `authorization` holds a token."""
        if not self.required or path in OPEN_PATHS:
            return
        if authorization and authorization[: len(_SCHEME)].lower() == _SCHEME:
            offered = authorization[len(_SCHEME) :].strip().encode()
            # Every token is compared, so the time taken tells nothing of which came close.
            matched = False
            for token in self.accepted:
                matched |= hmac.compare_digest(offered, token)
            if matched:
                return
            raise Unauthorized("the bearer token is not accepted")
        raise Unauthorized("this server needs 'Authorization: Bearer TOKEN'")

    def _read(self) -> tuple[bytes, ...]:
        if self.token_file is None:
            return ()
        try:
            text = self.token_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UsageError(
                f"cannot read the auth token file {self.token_file}: {reason}"
            ) from exc
        tokens = tuple(line.strip().encode() for line in text.splitlines() if line.strip())
        if not tokens:
            raise UsageError(f"the auth token file {self.token_file} holds no token")
        return tokens
