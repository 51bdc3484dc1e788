"""The local cache of models downloaded from a tracking server.

An entry is a directory named after the model version and a digest of what was
downloaded (the server, the artifact location, each file's path and size), so a version
whose files change gets a new entry and an unchanged one is never downloaded twice. An
entry is filled in a hidden sibling and renamed into place whole: a reader, another run
included, sees a complete model or none. The cache is `$INFER_CLI_CACHE`, else
`$XDG_CACHE_HOME/infer-cli`, else `~/.cache/infer-cli`; deleting it at any time is safe.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import ModelError

CACHE_ENV_VAR = "INFER_CLI_CACHE"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

Download = Callable[[PurePosixPath, Path], None]


def cache_root() -> Path:
    explicit = os.environ.get(CACHE_ENV_VAR)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "infer-cli"


@dataclass(frozen=True)
class ModelCache:
    """Where downloaded models are kept."""

    root: Path

    @classmethod
    def default(cls) -> ModelCache:
        return cls(cache_root() / "models")

    def entry(
        self, name: str, content: str, files: Sequence[tuple[PurePosixPath, int | None]]
    ) -> CacheEntry:
        """The entry for `files`, named `name` (a model version, say) and keyed by `content`."""
        digest = hashlib.sha256(content.encode()).hexdigest()[:16]
        label = _UNSAFE.sub("_", name).strip("._") or "model"
        return CacheEntry(self.root / f"{label[:80]}-{digest}", tuple(files))


@dataclass(frozen=True)
class CacheEntry:
    """One downloaded model: its directory and the files it must hold."""

    directory: Path
    files: tuple[tuple[PurePosixPath, int | None], ...]

    def complete(self) -> bool:
        """Whether the entry holds every file, each of the size the server listed."""
        for relative, size in self.files:
            try:
                actual = (self.directory / relative).stat().st_size
            except OSError:
                return False
            if size is not None and actual != size:
                return False
        return self.directory.is_dir()

    def fill(self, download: Download) -> CacheEntry:
        """Download every file into a hidden sibling, check their sizes, and rename it into
        place; if another run put a complete entry there first, keep that one."""
        try:
            self.directory.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(
                tempfile.mkdtemp(prefix=f".{self.directory.name}.", dir=self.directory.parent)
            )
        except OSError as exc:
            raise ModelError(
                f"cannot write the model cache {self.directory.parent}: {exc.strerror} "
                f"(set {CACHE_ENV_VAR} to a writable directory)"
            ) from exc
        try:
            for relative, size in self.files:
                target = staging.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                download(relative, target)
                actual = target.stat().st_size
                if size is not None and actual != size:
                    raise ModelError(
                        f"{relative}: downloaded {actual} bytes of {size}; the connection "
                        "broke or the file changed meanwhile, try again"
                    )
                _sync(target)
            self._publish(staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self

    def _publish(self, staging: Path) -> None:
        try:
            os.rename(staging, self.directory)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        if self.complete():
            return  # another run finished the same download first
        # A damaged entry (a file deleted by hand, say): swap the new one in.
        retired = Path(tempfile.mkdtemp(prefix=f".{self.directory.name}.old.", dir=staging.parent))
        os.rmdir(retired)
        os.rename(self.directory, retired)
        os.rename(staging, self.directory)
        shutil.rmtree(retired, ignore_errors=True)


def _sync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
