"""What a server serves and how: each model's source and name, the server's settings, and
the models once loaded, with what loading each cost."""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from .options import ServeOptions
from .served import model_name

if TYPE_CHECKING:
    from ..core.model import Model


@dataclass(frozen=True)
class ModelSource:
    """One model to serve: where it comes from and the name it is served under."""

    path: Path
    uri: str | None = None
    """An MLflow model URI (`models:/NAME@ALIAS`...) served instead of `path`."""
    name: str | None = None
    """The name given (`-m NAME=PATH`); None to name it after its directory or file (or its
    registered name) once loaded."""

    @property
    def reference(self) -> str | Path:
        return self.uri or self.path

    @property
    def known_name(self) -> str | None:
        """Its name as far as it can be told before loading: a model URI is named after
        what the registry says, a path after its directory or file."""
        if self.name or self.uri:
            return self.name
        return self.path.stem if self.path.is_file() else self.path.name or "model"


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded for serving, with what its load cost, for the banner."""

    name: str
    source: ModelSource
    model: Model
    seconds: float
    resident_bytes: int | None
    """How much the process's resident memory grew while it loaded (None where unknown)."""


@dataclass(frozen=True)
class ServeConfig:
    """Where to serve what, and how. The default model is `model_path` (or `model_uri`),
    served as `model_name`; `more_models` are served beside it."""

    model_path: Path
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    reload: bool = False
    options: ServeOptions = field(default_factory=ServeOptions)
    trust_types: tuple[str, ...] = ()
    """Types a skops model may hold beyond those vouched for, for every load and reload."""
    model_uri: str | None = None
    """An MLflow model URI (`models:/NAME@ALIAS`...) served instead of `model_path`."""
    tracking_uri: str | None = None
    """The MLflow store `model_uri` is resolved in."""
    reload_interval: float | None = None
    """Seconds between two looks for a new model with `reload`: at the model's files, or
    at the registry for a model URI (where the alias or stage may have moved)."""
    model_name: str | None = None
    """The default model's name, when given (`-m NAME=PATH`)."""
    more_models: tuple[ModelSource, ...] = ()

    @property
    def model(self) -> str | Path:
        return self.model_uri or self.model_path

    @property
    def sources(self) -> tuple[ModelSource, ...]:
        """Every model to serve, the default first."""
        return (ModelSource(self.model_path, self.model_uri, self.model_name), *self.more_models)

    @property
    def loopback_only(self) -> bool:
        """The server listens where only this machine can reach it: 127.0.0.0/8, ::1, or a
        name that resolves to nothing else. An address that cannot be told counts as open."""
        return is_loopback(self.host)

    def load(self, source: ModelSource | None = None) -> Model:
        """Load a model to serve (the default one unless `source` says), checked against
        `serve --threshold`."""
        from ..core.store import load_model

        reference = source.reference if source else self.model
        model = load_model(reference, trust_types=self.trust_types, tracking_uri=self.tracking_uri)
        check_decision(model, self.options)
        return model

    def load_all(self) -> list[LoadedModel]:
        """Load every model, in order, each timed and its resident memory measured; a name
        served twice is a usage error."""
        loaded: list[LoadedModel] = []
        for source in self.sources:
            resident = resident_bytes()
            began = time.perf_counter()
            model = self.load(source)
            seconds = time.perf_counter() - began
            grown = resident_bytes()
            growth = None if resident is None or grown is None else max(0, grown - resident)
            loaded.append(
                LoadedModel(source.name or model_name(model), source, model, seconds, growth)
            )
        check_names([entry.name for entry in loaded])
        return loaded


def check_names(names: list[str]) -> None:
    """Refuse a name given to two models: a request could not say which it means."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UsageError(
                f"two models are served as '{name}': name them apart with -m NAME=PATH"
            )
        seen.add(name)


def resident_bytes() -> int | None:
    """This process's resident memory now, from /proc (None where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def is_loopback(host: str) -> bool:
    """`host` is, or resolves only to, loopback addresses."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    if not host:
        return False  # every interface
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(found) and all(
        ipaddress.ip_address(str(address[4][0]).split("%")[0]).is_loopback for address in found
    )


def check_decision(model: Model, options: ServeOptions) -> None:
    """Refuse a model that `serve --threshold`, or the threshold its card holds, does not fit
    (a regressor, say), before it serves a request."""
    model.decision(options.threshold, origin="serve --threshold")
