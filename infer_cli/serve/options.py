"""How the server behaves: the `serve` command's options, shared by its parts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServeOptions:
    """How the server behaves; the `serve` command's options."""

    max_body_bytes: int = 64 * 1024 * 1024
    """Largest request body accepted; larger ones are answered 413."""
    max_rows: int = 1_000_000
    """Most rows one request may hold; more are answered 413."""
    max_columns: int = 10_000
    """Most columns a request's table may have; more are answered 413."""
    request_timeout: float = 30.0
    """Seconds a prediction may wait and run before it is answered 504."""
    read_timeout: float = 10.0
    """Seconds a client may take to send a request, and an idle connection may stay open."""
    max_batch_rows: int = 64
    """Most rows scored in one model call."""
    max_batch_delay: float = 0.002
    """Longest a batch waits for requests already being read."""
    access_log: bool = True
    """Write one line per request on stderr."""
    drift_window: int = 10_000
    """Rows of recent input judged against the training profile (0: no drift check)."""
    profile: str | None = None
    """The training profile to judge input by, when not the model's own."""
    threshold: float | None = None
    """A binary classifier's decision threshold where a request sets none; None for the one
    saved in the model's card, else the estimator's own labels."""
    auth_token_file: str | None = None
    """A file of bearer tokens, one a line, read again on SIGHUP."""
    auth_token: str | None = field(default=None, repr=False)
    """A bearer token (from `$INFER_CLI_AUTH_TOKEN`), accepted along with the file's."""

    tls_cert: str | None = None
    """A PEM certificate (chain): HTTPS instead of HTTP."""
    tls_key: str | None = None
    """The certificate's PEM private key, when not in the certificate's file."""
    tls_client_ca: str | None = None
    """PEM certificates of the CAs a client's certificate must be signed by."""

    @property
    def authenticated(self) -> bool:
        """Requests need a bearer token."""
        return bool(self.auth_token_file or (self.auth_token and self.auth_token.strip()))
