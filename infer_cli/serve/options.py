"""How the server behaves: the `serve` command's options, shared by its parts, and the one
place they are checked before the server starts (`ServeOptions.check`)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..choices import LOG_FORMATS, LogFormat, listed
from ..errors import UsageError


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

    log_predictions: str | None = None
    """A directory where every scored row is recorded (the prediction log)."""
    log_format: LogFormat = "parquet"
    """The prediction log's files: Parquet (typed, compact, written a column at a time off
    the interpreter lock) or JSON Lines."""
    log_rotate_mb: float = 64.0
    """A log file is made whole and a new one begun once it holds this many MiB..."""
    log_rotate_seconds: float = 300.0
    """...or has been open this many seconds."""
    log_queue_rows: int = 100_000
    """Most rows waiting for the log's writer; rows beyond are dropped and counted."""

    def check(self) -> None:
        """Refuse, as a usage error, options that cannot work together or a prediction log
        directory that cannot be made or written in; the server has not started."""
        if not self.tls_cert and (self.tls_key or self.tls_client_ca):
            raise UsageError("--tls-key and --tls-client-ca need --tls-cert")
        if self.log_predictions is None:
            return
        if self.log_format not in LOG_FORMATS:
            raise UsageError(f"--log-format must be one of {listed(LOG_FORMATS)}")
        if self.log_rotate_mb <= 0 or self.log_rotate_seconds <= 0 or self.log_queue_rows < 1:
            raise UsageError(
                "--log-rotate-mb, --log-rotate-seconds and --log-queue-rows must be more than 0"
            )
        _check_writable(self.log_predictions)

    @property
    def authenticated(self) -> bool:
        """Requests need a bearer token."""
        return bool(self.auth_token_file or (self.auth_token and self.auth_token.strip()))


def _check_writable(directory: str) -> None:
    """Make `directory` if need be, and write and remove a hidden file in it."""
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=".write-check-", dir=directory)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise UsageError(f"--log-predictions {directory}: cannot write there ({reason})") from exc
