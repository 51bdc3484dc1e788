"""Refusing a run whose output paths name its inputs, or one another, under any spelling.

`out.csv`, `./out.csv`, an absolute path, a symbolic link and a hard link can all name one
file: writing one of them would replace what another is read from or written to. Paths are
compared by their real paths (links resolved) and, for files that exist, by device and inode.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from ..errors import UsageError
from .atomic import STDIO

# (the option that names it, the path), so that a message says which two options collide.
Paths = Iterable[tuple[str, "str | os.PathLike[str] | None"]]


def refuse_aliases(reads: Paths, writes: Paths, *, inside: Paths = ()) -> None:
    """Raise a `UsageError` if a path in `writes` names a path in `reads`, another path in
    `writes`, or a file inside a directory of `inside`.

    Each path comes with the option that named it (`--output`, `--input`); `-` (stdin,
    stdout) and None are left out. A character device (`/dev/null`) may be named twice: it is
    written to, never replaced.
    """
    named = _named(writes)
    read = _named(reads)
    directories = _named(inside)
    for position, (flag, path) in enumerate(named):
        if _is_device(path):
            continue
        for other_flag, other in [*named[:position], *read]:
            if _same(path, other):
                raise UsageError(
                    f"{flag} {path} is the same file as {other_flag} {other}; "
                    "writing it would destroy the other: choose another path"
                )
        for other_flag, directory in directories:
            if _within(path, directory):
                raise UsageError(
                    f"{flag} {path} would write into {other_flag} {directory}; choose another path"
                )


def _named(paths: Paths) -> list[tuple[str, str]]:
    named = [(flag, os.fspath(path)) for flag, path in paths if path is not None]
    return [(flag, path) for flag, path in named if path not in ("", STDIO)]


def _same(one: str, other: str) -> bool:
    if os.path.realpath(one) == os.path.realpath(other):
        return True
    try:
        return os.path.samefile(one, other)
    except OSError:  # either does not exist (yet): the real paths said all there is
        return False


def _within(path: str, directory: str) -> bool:
    if not os.path.isdir(directory):
        return False
    root = os.path.realpath(directory)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def _is_device(path: str) -> bool:
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False
