"""Files that appear only once complete: written beside their target, synced, renamed.

`-` is stdout. A run that fails or is interrupted leaves no partial file and an existing one
intact; `.part` files left by runs killed outright are cleaned up by later runs.
"""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

from ..errors import DataError

STDIO = "-"
FLUSH_SECONDS = 0.5


@contextmanager
def atomic_output(path: str) -> Iterator[IO[bytes]]:
    """A binary handle for `path` that becomes the file only if the block completes.

    The data goes to a hidden `.NAME.HOST.PID.*.part` file in the same directory and is
    renamed over `path` at the end, so a failed or interrupted run leaves neither a partial
    file nor a destroyed previous one. A run killed outright (SIGKILL, the OOM killer) leaves
    its `.part` file behind; the next run writing the same path deletes such files whose
    process is gone. `-` writes straight to stdout.

    A write that fails (a full disk, a quota) is a `DataError` naming `path`; a reader of
    stdout that went away stays a `BrokenPipeError`.
    """
    if path == STDIO:
        yield _named(sys.stdout.buffer, "<stdout>")
        with _naming("<stdout>"):
            sys.stdout.buffer.flush()
        return
    target = Path(path)
    if target.is_dir():
        raise DataError(f"{path}: is a directory, not a file")
    if target.exists() and not target.is_file():
        # A device or a named pipe (/dev/null, a FIFO) is written to, never replaced.
        with _naming(path):
            handle = open(target, "wb")  # noqa: SIM115 (closed below, its errors named)
        try:
            yield _named(handle, path)
        finally:
            with _naming(path):
                handle.close()
        return
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise DataError(f"{path}: no such directory '{directory}'")
    _remove_stale_parts(directory, target.name)
    # The name is known before the file exists, so that an interrupt arriving just after
    # the file is made (a preempted process, a signal) still finds it to remove.
    token = secrets.token_hex(4)
    temporary = directory / f".{target.name}.{_host()}.{os.getpid()}.{token}.part"
    try:
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except PermissionError as exc:
            raise DataError(f"{path}: cannot write in '{directory}' (permission denied)") from exc
        with os.fdopen(descriptor, "wb") as handle:
            with _flushing_in_background(descriptor):
                yield _named(handle, path)
            with _naming(path):
                handle.flush()
                os.fsync(handle.fileno())
        if target.exists():
            os.chmod(temporary, target.stat().st_mode & 0o7777)
        else:
            os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _named(handle: IO[bytes], name: str) -> IO[bytes]:
    return cast("IO[bytes]", _Named(handle, name))


class _Named:
    """A binary handle whose failed writes are a `DataError` naming its file: the error
    reaches the user through the writer (pyarrow, gzip) that was writing, which knows no name.
    """

    def __init__(self, handle: IO[bytes], name: str) -> None:
        self._handle = handle
        self._name = name

    def write(self, data: bytes) -> int:
        with _naming(self._name):
            return self._handle.write(data)

    def flush(self) -> None:
        with _naming(self._name):
            self._handle.flush()

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._handle, attribute)


@contextmanager
def _naming(name: str) -> Iterator[None]:
    """An error writing `name` (a full disk, a quota, an I/O error) as a `DataError`; a closed
    pipe is left to the caller, for whom it means the reader has gone."""
    try:
        yield
    except (BrokenPipeError, DataError):
        raise
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise DataError(f"{name}: cannot write ({reason})") from exc


@contextmanager
def _flushing_in_background(descriptor: int) -> Iterator[None]:
    """Hand written data to the disk every half second while the block runs.

    The rename at the end must follow an fsync, or a crash could leave an empty OUT. Syncing
    as the file grows, on a thread, leaves the final fsync a fraction of a second of data
    instead of the whole file (measured: 0.5 s less at the end of a 400 MB output).
    """
    stop = threading.Event()

    def flush() -> None:
        while not stop.wait(FLUSH_SECONDS):
            try:
                os.fdatasync(descriptor)
            except OSError:
                return

    flusher = threading.Thread(target=flush, name="flush", daemon=True)
    flusher.start()
    try:
        yield
    finally:
        stop.set()
        flusher.join()


def _remove_stale_parts(directory: Path, name: str) -> None:
    """Delete `.part` files left by killed runs on this host whose process no longer exists."""
    prefix = f".{name}.{_host()}."
    for leftover in directory.glob(f"{glob.escape(prefix)}*.part"):
        pid = leftover.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            leftover.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    current = os.umask(0)
    os.umask(current)
    return current


def write_json(path: str, document: Any) -> None:
    """Write a JSON document atomically (`-` for stdout)."""

    with atomic_output(path) as handle:
        handle.write((json.dumps(document, indent=2) + "\n").encode("utf-8"))
