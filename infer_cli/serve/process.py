"""Running `infer-cli serve`: bind, load, serve, hot-reload, drain and exit.

One process binds the socket before the models are loaded (answering 503 until they are),
or, with several workers, binds, loads once and forks workers that share the socket.
SIGHUP (or a changed model with `--reload`) swaps in a new version of each model once it
loads and passes a check, each model on its own; SIGTERM and Ctrl-C stop accepting, finish
what is in flight, and exit 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .access_log import ACCESS_LOG, log
from .config import (
    LoadedModel,
    ModelSource,
    ServeConfig,
    check_decision,
    check_names,
    is_loopback,
)
from .reload import (
    POLL_SECONDS,
    REGISTRY_POLL_SECONDS,
    RELOAD_POLL_SECONDS,
    Asked,
    _watch,
    reload_model,
    reload_tokens,
)
from .routes import App
from .server import PredictionServer
from .stats import ServeStats

if TYPE_CHECKING:
    from ..core.model import Model

__all__ = [
    "REGISTRY_POLL_SECONDS",
    "RELOAD_POLL_SECONDS",
    "Asked",
    "LoadedModel",
    "ModelSource",
    "ServeConfig",
    "ServeSummary",
    "check_decision",
    "check_names",
    "is_loopback",
    "reload_model",
    "reload_tokens",
    "serve",
]
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass
class ServeSummary:
    """What the server did, for the report printed when it stops."""

    stats: ServeStats
    seconds: float
    workers: int


Announce = Callable[["Model", ServeConfig, float, list[LoadedModel]], None]


def serve(config: ServeConfig, announce: Announce) -> ServeSummary:
    """Serve until SIGTERM or SIGINT; `announce(default model, config, seconds, loaded)` runs
    once every model is loaded and the server ready."""
    check_names([name for source in config.sources if (name := source.known_name)])
    began = time.perf_counter()
    server = _bind(config)
    config = replace(config, port=int(server.server_address[1]))

    def ready(loaded: list[LoadedModel]) -> None:
        announce(loaded[0].model, config, _since(began), loaded)

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
    loaded: list[LoadedModel] | None,
    on_ready: Callable[[list[LoadedModel]], None] | None,
    reload_first: bool = False,
    parent: int | None = None,
) -> ServeStats:
    """Serve on this process until told to stop; load the models while already answering.

    `reload_first` makes a worker that replaces a dead one pick up models reloaded since
    the server started; a worker stops by itself if its `parent` process goes away.
    """
    app = server.app
    asked = Asked(reload=reload_first)
    _on_signals(asked)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    if loaded is not None:
        app.models = {entry.name: entry.model for entry in loaded}
    thread = threading.Thread(target=server.serve_forever)
    thread.daemon = True
    thread.start()
    if loaded is None:
        try:
            loaded = config.load_all()
        except BaseException:
            server.shutdown()
            raise
        app.models = {entry.name: entry.model for entry in loaded}
    if on_ready:
        on_ready(loaded)
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


def _on_signals(asked: Asked) -> None:
    def stop(*_: Any) -> None:
        asked.stop = True

    def reload(*_: Any) -> None:
        asked.reload = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)


def _serve_workers(
    server: PredictionServer,
    config: ServeConfig,
    on_ready: Callable[[list[LoadedModel]], None],
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
    loaded = config.load_all()
    # Mapped before the fork, so that every worker counts into it and reads the sum.
    stats = ServeStats([entry.name for entry in loaded], workers=config.workers)
    stats.log_enabled = bool(config.options.log_predictions)
    on_ready(loaded)
    for number in range(config.workers):
        if not stopping.stop:
            _fork_worker(server, config, loaded, stats, children, number)
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
            _fork_worker(server, config, loaded, stats, children, number, replacement=True)
    return stats


def _fork_worker(
    server: PredictionServer,
    config: ServeConfig,
    loaded: list[LoadedModel],
    stats: ServeStats,
    children: dict[int, int],
    number: int,
    replacement: bool = False,
) -> None:
    """Fork worker `number`, recorded in `children` before a signal can be forwarded; it
    counts into its block of the shared `stats` (a replacement goes on where the dead one
    stopped)."""
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
        stats.use_slot(number)
        server.app = App(config.options, stats)
        _serve_one(server, config, loaded, None, replacement, parent)
    except BaseException as exc:
        log(f"worker {os.getpid()} failed: {exc}")
        status = 1
    finally:
        os._exit(status)


def _exit_reason(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"status {os.WEXITSTATUS(status)}"
