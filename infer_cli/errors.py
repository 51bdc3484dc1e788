"""The errors infer-cli raises, each carrying its exit code and its HTTP status.

They are raised where a problem is detected and translated in exactly two places:
`cli.main` (exit code and one line on stderr) and the server (status and JSON body).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit statuses, documented in the README."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    DATA = 3
    MODEL = 4
    DRIFT = 5
    """The output is complete, but the input drifted past `predict --fail-on-drift`."""
    INTERRUPTED = 130
    # What a shell reports for a process killed by SIGPIPE (128 + 13), as for `cat | head`.
    BROKEN_PIPE = 141


class InferError(Exception):
    """Base of every error infer-cli reports to a user rather than as a traceback."""

    exit_code: ExitCode = ExitCode.INTERNAL
    http_status: int = 500
    error_code: str = "INTERNAL_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(InferError):
    """Options that do not fit together or name something that does not exist."""

    exit_code = ExitCode.USAGE
    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


class DataError(InferError):
    """Input data that cannot be read or scored: a missing file, a malformed CSV, a bad value."""

    exit_code = ExitCode.DATA
    http_status = 400
    error_code = "BAD_REQUEST"


class SchemaError(DataError):
    """Input that does not match the model's signature: names the column and, if known, the row.

    `row` is the 0-based position of the row among the data rows of its source, so a
    reader that knows where the rows came from can turn it into a line number.
    """

    def __init__(
        self,
        reason: str,
        *,
        column: str | None = None,
        row: int | None = None,
        source: str | None = None,
        line: int | None = None,
    ) -> None:
        self.reason = reason
        self.column = column
        self.row = row
        self.source = source
        self.line = line
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = []
        if self.source is not None:
            where.append(self.source)
        if self.line is not None:
            where.append(f"line {self.line}")
        elif self.row is not None:
            where.append(f"row {self.row + 1}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def located(self, source: str | None, first_line: int | None) -> SchemaError:
        """The same error placed in a file: `first_line` is the line of data row 0."""
        line = None
        if first_line is not None and self.row is not None:
            line = first_line + self.row
        return SchemaError(self.reason, column=self.column, row=self.row, source=source, line=line)


class ModelError(InferError):
    """A model that cannot be loaded, fails its integrity check, or fails while predicting."""

    exit_code = ExitCode.MODEL
    http_status = 500
    error_code = "INTERNAL_ERROR"


class DriftDetected(InferError):
    """Input that has moved away from the training data past the limit a run was given.
    Raised once the run is complete: its output is written, its summary shown."""

    exit_code = ExitCode.DRIFT
    error_code = "DRIFT"


def exit_code_of(exc: BaseException) -> ExitCode:
    """The exit status a run that raised `exc` ends with, for the command line and for the
    summary a run leaves behind alike."""
    if isinstance(exc, InferError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        return ExitCode.BROKEN_PIPE
    if isinstance(exc, MemoryError):
        return ExitCode.DATA
    return ExitCode.INTERNAL


def printable(text: str) -> str:
    """`text` with every character a terminal could act on (control characters, line breaks,
    bidirectional overrides, lone surrogates) written as a Python escape: `\\x1b`, `\\n`.
    What a file, a client or a library wrote reaches a terminal only through it."""
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type if it has none), for one-line
    error messages that name a cause without its traceback."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
