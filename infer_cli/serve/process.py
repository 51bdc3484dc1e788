"""Running `infer-cli serve`: bind, load, serve, hot-reload, drain and exit.

One process binds the socket before the model is loaded (answering 503 until it is),
or, with several workers, binds, loads once and forks workers that share the socket.
SIGHUP (or a changed model with `--reload`) swaps in a new model once it loads and
passes a check; SIGTERM and Ctrl-C stop accepting, finish what is in flight, and exit 0.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InferError, UsageError
from .access_log import ACCESS_LOG, log
from .loop import PredictionServer
from .options import ServeOptions
from .routes import App
from .stats import ServeStats

if TYPE_CHECKING:
    from ..core.model import Model

RELOAD_POLL_SECONDS = 1.0
# A registry is another process, often another machine: asked less often than a disk.
REGISTRY_POLL_SECONDS = 10.0
POLL_SECONDS = 0.1
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class ServeConfig:
    """Where to serve what, and how."""

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

    @property
    def model(self) -> str | Path:
        return self.model_uri or self.model_path

    @property
    def loopback_only(self) -> bool:
        """The server listens where only this machine can reach it: 127.0.0.0/8, ::1, or a
        name that resolves to nothing else. An address that cannot be told counts as open."""
        return is_loopback(self.host)

    def load(self) -> Model:
        from ..core.store import load_model

        model = load_model(self.model, trust_types=self.trust_types, tracking_uri=self.tracking_uri)
        check_decision(model, self.options)
        return model


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


@dataclass
class ServeSummary:
    """What the server did, for the report printed when it stops."""

    stats: ServeStats
    seconds: float
    workers: int


Announce = Callable[["Model", ServeConfig, float], None]


def serve(config: ServeConfig, announce: Announce) -> ServeSummary:
    """Serve until SIGTERM or SIGINT; `announce(model, config, seconds)` runs once ready."""
    began = time.perf_counter()
    server = _bind(config)
    config = replace(config, port=int(server.server_address[1]))

    def ready(model: Model) -> None:
        announce(model, config, _since(began))

    try:
        if config.workers <= 1:
            stats = _serve_one(server, config, None, ready)
        else:
            stats = _serve_workers(server, config, ready)
    finally:
        server.server_close()
    return ServeSummary(stats, _since(began), config.workers)


def _since(began: float) -> float:
    return time.perf_counter() - began


def _bind(config: ServeConfig) -> PredictionServer:
    try:
        options = config.options
        options.check()
        tls = None
        if options.tls_cert:
            from .tls import server_context

            tls = server_context(options.tls_cert, options.tls_key, options.tls_client_ca)
        return PredictionServer((config.host, config.port), App(options), tls)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise UsageError(f"cannot listen on {config.host}:{config.port}: {reason}") from exc


def _serve_one(
    server: PredictionServer,
    config: ServeConfig,
    model: Model | None,
    on_ready: Callable[[Model], None] | None,
    reload_first: bool = False,
    parent: int | None = None,
) -> ServeStats:
    """Serve on this process until told to stop; load the model while already answering.

    `reload_first` makes a worker that replaces a dead one pick up a model reloaded since
    the server started; a worker stops by itself if its `parent` process goes away.
    """
    app = server.app
    asked = Asked(reload=reload_first)
    _on_signals(asked)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    app.model = model
    thread = threading.Thread(target=server.serve_forever)
    thread.daemon = True
    thread.start()
    if model is None:
        try:
            model = config.load()
        except BaseException:
            server.shutdown()
            raise
        app.model = model
    if on_ready:
        on_ready(model)
    watcher = threading.Thread(target=_watch, args=(app, config, asked), name="reload", daemon=True)
    watcher.start()
    while not asked.stop:
        time.sleep(POLL_SECONDS)
        if parent is not None and os.getppid() != parent:
            log(f"worker {os.getpid()}: the main process is gone; stopping")
            asked.stop = True
    _drain(server)
    return app.stats


def _drain(server: PredictionServer) -> None:
    """Stop accepting and answer what is in flight; each request's time limits bound the wait."""
    server.shutdown()
    server.socket.close()
    server.app.close()
    ACCESS_LOG.flush()


@dataclass
class Asked:
    """What signals have asked for. Plain flags, polled: a signal handler runs on the main
    thread between two bytecodes, possibly inside a lock it would then wait for forever."""

    stop: bool = False
    reload: bool = False


def _on_signals(asked: Asked) -> None:
    def stop(*_: Any) -> None:
        asked.stop = True

    def reload(*_: Any) -> None:
        asked.reload = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)


def _serve_workers(
    server: PredictionServer, config: ServeConfig, on_ready: Callable[[Model], None]
) -> ServeStats:
    """Load once, fork `config.workers` processes that accept on the shared socket, wait."""

    stopping = Asked()
    children: dict[int, int] = {}

    def forward(signum: int, _frame: Any) -> None:
        if signum != signal.SIGHUP:
            stopping.stop = True
            # The workers close their copies as they drain; once this one is closed too,
            # new connections are refused instead of waiting in a backlog nobody reads.
            server.socket.close()
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if signum != signal.SIGHUP else signal.SIGHUP)

    for signum in SIGNALS:
        signal.signal(signum, forward)
    model = config.load()
    on_ready(model)
    reports = Path(tempfile.mkdtemp(prefix="infer-cli-serve-"))
    for number in range(config.workers):
        if not stopping.stop:
            _fork_worker(server, config, model, reports, children, number)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        number = children.pop(pid, -1)
        if number >= 0 and not stopping.stop:
            log(f"worker {number} (pid {pid}) exited ({_exit_reason(status)}); starting another")
            _fork_worker(server, config, model, reports, children, number, replacement=True)
    stats = ServeStats()
    for report in reports.glob("*.json"):
        stats.merge(json.loads(report.read_text()))
        report.unlink()
    reports.rmdir()
    return stats


def _fork_worker(
    server: PredictionServer,
    config: ServeConfig,
    model: Model,
    reports: Path,
    children: dict[int, int],
    number: int,
    replacement: bool = False,
) -> None:
    """Fork worker `number`, recorded in `children` before a signal can be forwarded."""
    # Signals wait until the child has its own handlers (it unblocks them in _serve_one)
    # and, here, until the child is in `children`, so a SIGTERM reaches it too.
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    parent = os.getpid()
    pid = os.fork()
    if pid:
        children[pid] = number
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        return
    status = 0
    try:
        server.app = App(config.options)
        stats = _serve_one(server, config, model, None, replacement, parent)
        (reports / f"{os.getpid()}.json").write_text(json.dumps(stats.snapshot()))
    except BaseException as exc:
        log(f"worker {os.getpid()} failed: {exc}")
        status = 1
    finally:
        os._exit(status)


def _exit_reason(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"status {os.WEXITSTATUS(status)}"


def _watch(app: App, config: ServeConfig, asked: Asked) -> None:
    """Reload on SIGHUP, and with `--reload` whenever the model on disk changes or, for a
    model URI, whenever the registry names another version."""
    watched = _RegistryWatch(app, config) if config.model_uri else _FileWatch(config)
    interval = config.reload_interval or watched.interval
    looked = time.monotonic()
    while not asked.stop:
        time.sleep(POLL_SECONDS)
        if asked.reload:
            asked.reload = False
            reload_tokens(app)
            reload_model(app, config.model, config.trust_types, config.tracking_uri)
        elif config.reload and time.monotonic() - looked >= interval:
            looked = time.monotonic()
            if watched.changed():
                reload_model(app, config.model, config.trust_types, config.tracking_uri)


class _FileWatch:
    """A model directory or file: changed when its inodes, sizes or times change."""

    interval = RELOAD_POLL_SECONDS

    def __init__(self, config: ServeConfig) -> None:
        self.path = config.model_path
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

    def __init__(self, app: App, config: ServeConfig) -> None:
        self.config = config
        served = app.model.card.source.get("registry", {}) if app.model else {}
        self.seen = _identity(served)
        self.failure = ""

    def changed(self) -> bool:
        from ..core.model_uri import lookup_model_uri

        assert self.config.model_uri is not None
        try:
            facts = lookup_model_uri(self.config.model_uri, self.config.tracking_uri)
        except InferError as exc:
            if str(exc) != self.failure:  # once per distinct failure, not at every look
                log(f"cannot ask the registry about {self.config.model_uri}: {exc}")
                self.failure = str(exc)
            return False
        self.failure = ""
        current = _identity(facts.to_dict())
        if current == self.seen:
            return False
        log(f"{self.config.model_uri} now names {facts.resolved}; loading it")
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
) -> bool:
    """Load the model at `path` (or model URI), check it, and swap it in; keep the old one
    if it fails."""
    from ..core.store import load_model

    old = app.model
    try:
        new = load_model(path, trust_types=trust_types, tracking_uri=tracking_uri)
        check_decision(new, app.options)
        _check(new)
    except InferError as exc:
        app.stats.record_reload("failed")
        kept = f"still serving {_served(old)}" if old else "no model served"
        log(f"reload of {path} failed, {kept}: {exc}")
        return False
    except Exception as exc:
        app.stats.record_reload("failed")
        log(f"reload of {path} failed: {type(exc).__name__}: {exc}")
        return False
    # A card saved over with a new threshold (evaluate --save) keeps the model file's hash.
    if old is not None and (_served(new), new.card.decision) == (_served(old), old.card.decision):
        return False
    app.model = new
    app.stats.record_reload("ok")
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


def check_decision(model: Model, options: ServeOptions) -> None:
    """Refuse a model that `serve --threshold`, or the threshold its card holds, does not fit
    (a regressor, say), before it serves a request."""
    model.decision(options.threshold, origin="serve --threshold")


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
