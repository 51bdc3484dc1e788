"""Reading a model's files without trusting them: regular files only (never a device or a
named pipe, which could be read without end or wait for ever), inside the model's
directory where its metadata names them, and capped in size where a file is parsed whole.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path, PurePosixPath

from ..errors import ModelError

# model.json and MLmodel are a few kilobytes; a model of 100,000 columns has a card of
# about 10 MiB. Parsed whole, a document this size stays within a few hundred MiB.
METADATA_LIMIT = 16 * 1024 * 1024


def read_regular(
    path: Path, *, limit: int | None = None, dir_fd: int | None = None, shown: Path | None = None
) -> bytes:
    """The bytes of the regular file at `path` (relative to `dir_fd` if given), at most
    `limit` of them; errors name it `shown`. OSError passes through (a missing file means
    different things to different callers); anything but a regular file, or a larger one,
    is a ModelError."""
    shown = shown or path
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    with os.fdopen(os.open(path, flags, dir_fd=dir_fd), "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise ModelError(f"{shown}: not a regular file ({_kind(status.st_mode)})")
        if limit is not None and status.st_size > limit:
            raise ModelError(f"{shown}: larger than {_mebibytes(limit)}; not a model file")
        payload = handle.read() if limit is None else handle.read(limit + 1)
    if limit is not None and len(payload) > limit:
        raise ModelError(f"{shown}: larger than {_mebibytes(limit)}; not a model file")
    return payload


def digest_regular(path: Path, *, head_size: int = 16) -> tuple[int, str, bytes]:
    """(size, SHA-256, first bytes) of the regular file at `path`, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise ModelError(f"{path}: not a regular file ({_kind(mode)})")
        while block := handle.read(1024 * 1024):
            if size == 0:
                head = block[:head_size]
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest(), head


def confined(directory: Path, relative: str, *, named_by: str) -> Path:
    """`relative` inside `directory`, its links resolved: refused when it is absolute, climbs
    out with `..`, or leads out through a symbolic link (of the file or of a directory)."""
    shown = directory / relative
    parts = PurePosixPath(relative)
    if not relative or parts.is_absolute() or ".." in parts.parts:
        raise ModelError(
            f"{directory / named_by}: the model file '{relative}' is not inside the model"
        )
    try:
        resolved = shown.resolve(strict=True)
    except FileNotFoundError as exc:
        raise ModelError(f"{shown}: missing ({named_by} names it)") from exc
    except (OSError, RuntimeError) as exc:
        # RuntimeError: a loop of symbolic links.
        raise ModelError(f"{shown}: cannot be resolved ({exc})") from exc
    if not resolved.is_relative_to(directory.resolve()):
        raise ModelError(
            f"{shown}: leads out of the model directory (to {resolved}); "
            f"{named_by} must name a file inside it"
        )
    return resolved


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def _mebibytes(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB"
