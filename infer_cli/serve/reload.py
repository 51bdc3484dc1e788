"""Hot reload: on SIGHUP, and with `--reload` whenever a model's files change or its
registry names another version, each model served is loaded again, checked and swapped in
on its own; one that fails keeps its old version serving, and every other model serves on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InferError
from .access_log import log
from .config import ModelSource, ServeConfig, check_decision
from .routes import App

if TYPE_CHECKING:
    from ..core.model import Model

RELOAD_POLL_SECONDS = 1.0
# A registry is another process, often another machine: asked less often than a disk.
REGISTRY_POLL_SECONDS = 10.0
POLL_SECONDS = 0.1


@dataclass
class Asked:
    """What signals have asked for. Plain flags, polled: a signal handler runs on the main
    thread between two bytecodes, possibly inside a lock it would then wait for forever."""

    stop: bool = False
    reload: bool = False


def _watch(app: App, config: ServeConfig, asked: Asked) -> None:
    """Reload every model on SIGHUP and, with `--reload`, each whenever its files change or,
    for a model URI, whenever the registry names another version."""
    watched = [
        _Watched(name, source, config, app.models.get(name))
        for name, source in zip(list(app.models), config.sources, strict=False)
    ]
    while not asked.stop:
        time.sleep(POLL_SECONDS)
        if asked.reload:
            asked.reload = False
            reload_tokens(app)
            for each in watched:
                each.reload(app)
        elif config.reload:
            for each in watched:
                if each.due() and each.watch.changed():
                    each.reload(app)


class _Watched:
    """One model served, as the reloader sees it: its name, where it comes from, its watch."""

    def __init__(
        self, name: str, source: ModelSource, config: ServeConfig, served: Model | None
    ) -> None:
        self.name = name
        self.source = source
        self.config = config
        self.watch: _FileWatch | _RegistryWatch
        if source.uri:
            self.watch = _RegistryWatch(source.uri, config.tracking_uri, served)
        else:
            self.watch = _FileWatch(source.path)
        self.interval = config.reload_interval or self.watch.interval
        self.looked = time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.looked < self.interval:
            return False
        self.looked = now
        return True

    def reload(self, app: App) -> None:
        config = self.config
        reload_model(
            app, self.source.reference, config.trust_types, config.tracking_uri, name=self.name
        )


class _FileWatch:
    """A model directory or file: changed when its inodes, sizes or times change."""

    interval = RELOAD_POLL_SECONDS

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stamp = _stamp(self.path)

    def changed(self) -> bool:
        current = _stamp(self.path)
        if current is None or current == self.stamp:
            return False
        self.stamp = current
        return True


class _RegistryWatch:
    """A model URI: changed when the registry resolves it to another version or location
    than it last did. A version that then fails to load is not tried again until the URI
    moves once more (or SIGHUP asks)."""

    interval = REGISTRY_POLL_SECONDS

    def __init__(self, uri: str, tracking_uri: str | None, served: Model | None) -> None:
        self.uri = uri
        self.tracking_uri = tracking_uri
        self.seen = _identity(served.card.source.get("registry", {}) if served else {})
        self.failure = ""

    def changed(self) -> bool:
        from ..core.model_uri import lookup_model_uri

        try:
            facts = lookup_model_uri(self.uri, self.tracking_uri)
        except InferError as exc:
            if str(exc) != self.failure:  # once per distinct failure, not at every look
                log(f"cannot ask the registry about {self.uri}: {exc}")
                self.failure = str(exc)
            return False
        self.failure = ""
        current = _identity(facts.to_dict())
        if current == self.seen:
            return False
        log(f"{self.uri} now names {facts.resolved}; loading it")
        self.seen = current
        return True


def _identity(registry: dict[str, Any]) -> tuple[Any, ...]:
    return (registry.get("version"), registry.get("model_id"), registry.get("artifact_location"))


def reload_tokens(app: App) -> None:
    """Read the auth token file again; if it cannot be read, the tokens so far stay."""
    tokens = app.tokens
    if tokens.token_file is None:
        return
    try:
        count = tokens.reload()
    except InferError as exc:
        log(f"{exc}; the tokens read before stay accepted")
        return
    log(f"read {count} auth token(s) from {tokens.token_file}")


def reload_model(
    app: App,
    path: str | Path,
    trust_types: tuple[str, ...] = (),
    tracking_uri: str | None = None,
    name: str | None = None,
) -> bool:
    """Load the model at `path` (or model URI), check it, and swap it in for the model served
    as `name` (the default one if None); keep the old one if it fails. Other models serve on
    whatever happens."""
    from ..core.store import load_model

    if name is None:
        name = next(iter(app.models), None)
    old = app.models.get(name) if name is not None else None
    try:
        new = load_model(path, trust_types=trust_types, tracking_uri=tracking_uri)
        check_decision(new, app.options)
        _check(new)
    except InferError as exc:
        app.stats.record_reload("failed", name)
        kept = f"still serving {_served(old)}" if old else "no model served"
        log(f"reload of {path} failed, {kept}: {exc}")
        return False
    except Exception as exc:
        app.stats.record_reload("failed", name)
        log(f"reload of {path} failed: {type(exc).__name__}: {exc}")
        return False
    # A card saved over with a new threshold (evaluate --save) keeps the model file's hash.
    if old is not None and (_served(new), new.card.decision) == (_served(old), old.card.decision):
        return False
    if name is None:
        app.model = new
    else:
        app.models[name] = new
    app.stats.record_reload("ok", name)
    before = f" (was {_served(old)})" if old else ""
    decision = new.decision(app.options.threshold, origin="serve --threshold")
    labels = f"; labels at {decision.describe()}" if decision else ""
    log(f"reloaded {path}: {_served(new)}{before}{labels}")
    return True


def _served(model: Model) -> str:
    """The model being served, as the log names it: its registered version, if it has one."""
    registry = model.card.source.get("registry")
    sha = f"sha256 {model.card.sha256[:12]}"
    return f"{registry['resolved']}, {sha}" if registry else sha


def _check(model: Model) -> None:
    """Score the card's example rows, if it has some: a model that cannot is not swapped in."""
    if model.card.example:
        import pandas as pd

        model.predict(pd.DataFrame(model.card.example))


def _stamp(path: Path) -> tuple[int, ...] | None:
    """What changes when a model is saved over `path`: inodes, sizes and times."""
    try:
        stamps = [path.stat()]
        if path.is_dir():
            stamps += [child.stat() for child in sorted(path.iterdir())]
    except OSError:
        return None
    return tuple(value for s in stamps for value in (s.st_ino, s.st_size, s.st_mtime_ns))
